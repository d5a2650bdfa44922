"""`threadkeeper check` against the loopback Discord, Slack and model, passing and failing, in-process and as a CLI."""

from __future__ import annotations

import asyncio
import io
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bots.config import Settings
from bots.operator.check import run_check
from tests.conftest import MakeSettings
from tests.fakes.discord import FakeDiscord
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack
from tests.router_harness import running_router
from tests.test_config_and_cli import run_cli


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def no_provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)


def everything(make_settings: MakeSettings, discord: FakeDiscord, slack: FakeSlack, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "discord_token": "fake-discord-token",
        "discord_api_base": discord.api_base,
        "slack_bot_token": "xoxb-test-token",
        "slack_app_token": "xapp-test-token",
        "slack_api_url": slack.api_url,
    }
    return make_settings(**(values | overrides))


async def report(settings: Settings) -> tuple[int, dict[str, str]]:
    """The exit code and each check's line by name."""
    out = io.StringIO()
    code = await run_check(out, settings=settings)
    lines: dict[str, str] = {}
    name = ""
    for line in out.getvalue().splitlines():
        if line.startswith(("✓ ", "✗ ")):
            name = line[2:].split(":", 1)[0]
            lines[name] = line
        elif name and line.startswith("    fix:"):
            lines[name] += "\n" + line
    return code, lines


async def test_everything_configured_and_healthy_passes_and_creates_nothing(
    make_settings: MakeSettings, fake_discord: FakeDiscord, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    code, lines = await report(everything(make_settings, fake_discord, fake_slack))
    assert code == 0, lines
    assert all(line.startswith("✓") for line in lines.values())
    assert list(lines) == [
        "settings",
        "database",
        "migrations",
        "disk",
        "model keys",
        "model request",
        "context window",
        "discord token",
        "discord intent",
        "discord invite",
        "slack token",
        "slack scopes",
        "slack mode",
    ]
    assert "does not exist yet" in lines["database"] and not await asyncio.to_thread(db_path.exists)
    assert "one-token request in" in lines["model request"] and len(fake_llm.requests) == 1
    assert fake_llm.requests[0].body["max_tokens"] == 1
    assert "client_id=900000000000000003" in lines["discord invite"] and "permissions=" in lines["discord invite"]
    assert "Socket Mode" in lines["slack mode"]
    assert [c.method for c in fake_slack.calls] == ["auth.test", "apps.connections.open"]


async def test_a_migrated_database_is_current_and_an_unknown_migration_fails(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with running_router(make_settings()) as bot:
        await bot.say("hello")
    code, lines = await report(make_settings())
    assert code == 0
    assert "passes PRAGMA integrity_check" in lines["database"] and lines["migrations"] == "✓ migrations: current"
    with sqlite3.connect(db_path) as connection:
        connection.execute("INSERT INTO _migrations (name, applied_utc) VALUES ('m999_from_the_future', 'now')")
    code, lines = await report(make_settings())
    assert code == 1
    assert lines["migrations"].startswith("✗") and "m999_from_the_future" in lines["migrations"]


async def test_a_corrupt_database_fails_the_check(make_settings: MakeSettings, db_path: Path) -> None:
    await asyncio.to_thread(db_path.parent.mkdir, parents=True)
    await asyncio.to_thread(db_path.write_bytes, b"this is not a database" * 100)
    code, lines = await report(make_settings())
    assert code == 1
    assert lines["database"].startswith("✗") and "fix:" in lines["database"]


@pytest.mark.usefixtures("no_provider_keys")
async def test_a_missing_model_key_names_the_variables_and_sends_nothing(
    make_settings: MakeSettings, fake_llm: FakeLLM
) -> None:
    code, lines = await report(make_settings(llm_api_key=None))
    assert code == 1
    assert lines["model keys"].startswith("✗")
    assert "LLM_API_KEY" in lines["model keys"] and "OPENAI_API_KEY" in lines["model keys"]
    assert "model request" not in lines
    assert fake_llm.requests == []


async def test_a_rejected_key_and_an_unknown_model_fail_the_request_with_the_fix(
    make_settings: MakeSettings, fake_llm: FakeLLM
) -> None:
    fake_llm.fail_always(401)
    fake_llm.echo_key_in_errors = True  # the provider quotes the key back: the report must not
    code, lines = await report(make_settings())
    assert code == 1
    assert (
        "failed: auth:" in lines["model request"]
        and "LLM_API_KEY is set but the provider rejected it" in lines["model request"]
    )
    assert len(fake_llm.requests) == 1  # tried once
    assert "Bearer [redacted]" in lines["model request"] and "sk-test-not-a-secret" not in lines["model request"]
    fake_llm.fail_always(404)
    _, lines = await report(make_settings(llm_model="openai/no-such-model"))
    assert "failed: not_found:" in lines["model request"] and "LLM_MODEL=openai/no-such-model" in lines["model request"]


async def test_an_unknown_window_without_llm_context_window_asks_for_it(
    make_settings: MakeSettings, fake_llm: FakeLLM
) -> None:
    values = make_settings().model_dump(exclude={"llm_context_window"}, exclude_defaults=True)
    code, lines = await report(Settings(_env_file=None, **values))  # type: ignore[call-arg]
    assert code == 1
    assert lines["context window"].startswith("✗") and "set LLM_CONTEXT_WINDOW" in lines["context window"]
    _, lines = await report(make_settings(llm_model="openai/gpt-4o-mini"))
    assert lines["context window"] == "✓ context window: 128,000 tokens (litellm's model map)"


async def test_discord_wrong_token_and_missing_intent_fail_with_their_fixes(
    make_settings: MakeSettings, fake_discord: FakeDiscord, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    settings = everything(make_settings, fake_discord, fake_slack)
    fake_discord.fail("GET", "/users/@me", status=401, code=0)
    code, lines = await report(settings)
    assert code == 1
    assert lines["discord token"].startswith("✗") and "Reset Token" in lines["discord token"]
    assert "discord intent" not in lines
    fake_discord.deny_message_content = True
    code, lines = await report(settings)
    assert code == 1
    assert lines["discord token"].startswith("✓")
    assert lines["discord intent"].startswith("✗") and "MESSAGE CONTENT INTENT" in lines["discord intent"]


async def test_slack_bad_token_missing_scope_and_refused_app_token_fail_with_their_fixes(
    make_settings: MakeSettings, fake_discord: FakeDiscord, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    settings = everything(make_settings, fake_discord, fake_slack)
    fake_slack.auth_error = "invalid_auth"
    code, lines = await report(settings)
    assert code == 1 and "invalid_auth" in lines["slack token"] and "xoxb-" in lines["slack token"]
    fake_slack.auth_error = None
    fake_slack.scopes = ("app_mentions:read", "chat:write", "channels:history")
    fake_slack.app_token_error = "invalid_auth"
    code, lines = await report(settings)
    assert code == 1
    assert lines["slack scopes"].startswith("✗") and "groups:history, im:history, users:read" in lines["slack scopes"]
    assert lines["slack mode"].startswith("✗") and "connections:write" in lines["slack mode"]
    code, lines = await report(everything(make_settings, fake_discord, fake_slack, slack_app_token=None))
    assert lines["slack mode"].startswith("✗") and "SLACK_SIGNING_SECRET" in lines["slack mode"]


def cli_env(tmp_path: Path, fake_llm: FakeLLM, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path}/cli.db",
        "LLM_MODEL": "openai/fake",
        "LLM_API_BASE": fake_llm.base_url,
        "LLM_CONTEXT_WINDOW": "8192",
        **extra,
    }


@pytest.mark.usefixtures("no_provider_keys")
async def test_the_check_command_exits_0_when_all_pass_and_1_with_the_fix_when_not(
    tmp_path: Path, fake_llm: FakeLLM
) -> None:
    good = await asyncio.to_thread(
        run_cli, "check", env=cli_env(tmp_path, fake_llm, LLM_API_KEY="sk-cli-secret-key"), cwd=tmp_path
    )
    assert good.returncode == 0, good.stdout + good.stderr
    assert "✓ model request" in good.stdout and "✗" not in good.stdout
    assert "sk-cli-secret-key" not in good.stdout + good.stderr
    bad = await asyncio.to_thread(run_cli, "check", env=cli_env(tmp_path, fake_llm), cwd=tmp_path)
    assert bad.returncode == 1
    assert (
        "✗ model keys" in bad.stdout and "fix: no key for openai/fake: set LLM_API_KEY, or OPENAI_API_KEY" in bad.stdout
    )
    assert "Traceback" not in bad.stderr
    broken = await asyncio.to_thread(run_cli, "check", env={"MAX_LIVE_SESSIONS": "zero"}, cwd=tmp_path)
    assert broken.returncode == 1 and broken.stdout.startswith("✗ settings: invalid")


@pytest.mark.usefixtures("no_provider_keys")
async def test_chat_without_a_model_key_stops_before_the_first_prompt(tmp_path: Path, fake_llm: FakeLLM) -> None:
    result = await asyncio.to_thread(run_cli, "chat", env=cli_env(tmp_path, fake_llm), stdin="hello\n", cwd=tmp_path)
    assert result.returncode == 2
    assert "set LLM_API_KEY, or OPENAI_API_KEY" in result.stderr and "threadkeeper check" in result.stderr
    assert "bot>" not in result.stdout
    assert fake_llm.requests == []


@pytest.mark.usefixtures("no_provider_keys")
async def test_run_without_a_model_key_stops_with_exit_2_and_the_fix(
    tmp_path: Path, fake_llm: FakeLLM, fake_slack: FakeSlack
) -> None:
    env = cli_env(
        tmp_path, fake_llm, SLACK_BOT_TOKEN="xoxb-test", SLACK_APP_TOKEN="xapp-test", SLACK_API_URL=fake_slack.api_url
    )
    result = await asyncio.to_thread(run_cli, "run", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "The model openai/fake cannot be used: no key for openai/fake: set LLM_API_KEY" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
async def test_each_mcp_server_is_started_and_its_tools_listed_or_its_failure_named(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    from tests.fakes.mcp_server import stdio_entry, write_config

    config = write_config(
        tmp_path / "mcp.json",
        {"fake": stdio_entry(), "broken": {"command": str(tmp_path / "no-such-server")}},
    )
    out = io.StringIO()
    assert await run_check(out, settings=make_settings(mcp_config=config)) == 1
    lines = out.getvalue().splitlines()
    fake = next(line for line in lines if "MCP server fake" in line)
    broken = next(line for line in lines if "MCP server broken" in line)
    assert fake.startswith("✓") and "lookup" in fake and "create_ticket" in fake
    assert broken.startswith("✗")
    assert f"fix: server 'broken' did not start: check its command or url in {config}" in out.getvalue()
