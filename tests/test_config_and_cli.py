"""Configuration errors and the command line, run as a user runs them: as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bots.config import ConfigError, load_settings
from tests.fakes.llm import FakeLLM
from tests.fakes.settings import fake_model_env

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict[str, str], stdin: str = "", cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SLACK_", "LLM_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, "-m", "bots", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**base, "PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True", **env},
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://db/tk"),
        ("MAX_LIVE_SESSIONS", "zero"),
        ("LLM_CONTEXT_WINDOW", "12"),
        ("LOG_FORMAT", "xml"),
        ("METRICS_PORT", "0"),
        ("METRICS_HOST", "http://0.0.0.0"),
        ("USER_DAILY_TOKENS", "-1"),
        ("LLM_MAX_OUTPUT_TOKENS", "lots"),
        ("LLM_MAX_OUTPUT_TOKENS", "8"),
    ],
)
def test_an_invalid_setting_names_the_variable_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    message = str(caught.value)
    assert message.startswith(f"{variable} is invalid")
    assert "Set it to" in message


def test_run_without_any_platform_exits_2_with_a_clear_message_and_no_traceback(tmp_path: Path) -> None:
    result = run_cli("run", env={"DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "DISCORD_TOKEN" in result.stderr and "SLACK_BOT_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_setting_exits_2_and_never_prints_a_secret(tmp_path: Path) -> None:
    result = run_cli(
        "run",
        env={"DISCORD_TOKEN": "super-secret-token-value", "MAX_LIVE_SESSIONS": "-5"},
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "MAX_LIVE_SESSIONS is invalid" in result.stderr
    assert "super-secret-token-value" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


async def test_chat_quit_and_come_back_shows_the_card_and_catch_up_answers(tmp_path: Path, fake_llm: FakeLLM) -> None:
    env = fake_model_env(fake_llm.base_url, tmp_path / "chat.db")
    fake_llm.reply("Noted, the launch is on March 3.")
    first = await _async_cli(["chat", "--thread", "launch"], env, "The launch is on March 3.\n", tmp_path)
    assert "Noted, the launch is on March 3." in first.stdout
    fake_llm.reply("SUMMARY: launch on March 3.")
    fake_llm.reply("March 3.")
    second = await _async_cli(["chat", "--thread", "launch"], env, "When is the launch?\n1\n", tmp_path)
    assert "Where were we?" in second.stdout and "[1] Catch me up" in second.stdout
    assert second.stdout.index("Where were we?") < second.stdout.index("March 3.")
    assert "Caught up" in second.stdout
    exported = await _async_cli(["export", "launch", "--format", "json"], env, "", tmp_path)
    assert exported.returncode == 0
    assert '"content": "When is the launch?"' in exported.stdout
    forgotten = await _async_cli(["forget", "launch"], env, "", tmp_path)
    assert "4 message(s) purged" in forgotten.stdout
    missing = await _async_cli(["export", "launch"], env, "", tmp_path)
    assert missing.returncode == 2 and "No thread named 'launch'" in missing.stderr


async def _async_cli(args: list[str], env: dict[str, str], stdin: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The fake model runs on this event loop, so the CLI subprocess runs in a worker thread."""
    import asyncio

    return await asyncio.to_thread(run_cli, *args, env=env, stdin=stdin, cwd=cwd)
