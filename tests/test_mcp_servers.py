"""MCPServers against the real fake MCP server: a stdio child process and a streamable-HTTP server on loopback.

No part of the SDK or of our code is mocked: the child is started by ``mcp.client.stdio``, speaks JSON-RPC over
its pipes, and dies for real when a test kills it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent.mcp_config import MCPConfigError, load_mcp_config
from agent.mcp_servers import MCPServers
from agent.tools import ToolBox, ToolCall
from tests.fakes.mcp_server import fingerprint, serving_http, stdio_entry, write_config
from tests.fakes.waiting import wait_until

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]

SECRETS = {
    "DISCORD_TOKEN": "discord-secret-value",
    "SLACK_BOT_TOKEN": "xoxb-slack-secret-value",
    "LLM_API_KEY": "sk-llm-secret-value",
    "OPENAI_API_KEY": "sk-openai-secret-value",
}


def servers_from(path: Path) -> MCPServers:
    return MCPServers.from_file(path, backoff_initial_s=0.05, backoff_max_s=0.2, health_interval_s=0.2)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Any]:
    """Start MCPServers from a config the test writes; stopped at the end."""
    started: list[MCPServers] = []

    async def start(servers: dict[str, dict[str, Any]]) -> MCPServers:
        mcp = servers_from(write_config(tmp_path / "mcp.json", servers))
        started.append(mcp)
        await mcp.start()
        await asyncio.wait_for(mcp.wait_settled(), timeout=30)
        return mcp

    yield start
    for mcp in started:
        await mcp.stop()


async def test_stdio_tools_are_offered_as_server__tool_with_read_only_hints_and_approvals(running: Any) -> None:
    mcp = await running({"fake": stdio_entry(approval="auto", tools={"lookup": {"approval": "always"}})})
    specs = {spec.name: spec for spec in mcp.specs()}
    assert {"fake__lookup", "fake__create_ticket", "fake__slow", "fake__explode", "fake__env_names"} <= set(specs)
    assert specs["fake__lookup"].read_only and specs["fake__lookup"].approval == "always"
    assert not specs["fake__create_ticket"].read_only and specs["fake__create_ticket"].approval == "auto"
    assert specs["fake__lookup"].input_schema["required"] == ["key"]
    output = await mcp.call("fake__lookup", {"key": "a"})
    assert (output.text, output.is_error) == ("value of a is 42", False)
    failed = await mcp.call("fake__explode", {})
    assert failed.is_error and "explode" in failed.text


async def test_the_stdio_child_inherits_none_of_the_bots_secrets(
    running: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)
    mcp = await running({"fake": stdio_entry(env={"FAKE_SETTING": "configured-env-value"})})
    names = set((await mcp.call("fake__env_names", {})).text.split(","))
    assert "FAKE_SETTING" in names and "PATH" in names
    assert not names & set(SECRETS), names & set(SECRETS)
    assert not {n for n in names if n.startswith(("DISCORD", "SLACK", "LLM_", "OPENAI", "ANTHROPIC"))}
    assert "configured-env-value" not in caplog.text


async def test_streamable_http_server_gets_its_headers_and_they_stay_out_of_the_log(
    running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving_http() as http:
        mcp = await running({"remote": {"url": http.url, "headers": {"X-Api-Key": "header-secret-value"}}})
        assert mcp.connected("remote")
        assert (await mcp.call("remote__lookup", {"key": "b"})).text == "value of b is 42"
        headers = (await mcp.call("remote__request_headers", {})).text
        assert headers == f"x-api-key={fingerprint('header-secret-value')}"
        await mcp.stop()
    assert "header-secret-value" not in caplog.text


async def test_a_server_that_never_starts_is_retried_and_the_others_work(
    running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    mcp = await running(
        {
            "broken": stdio_entry(env={"FAKE_MCP_FAIL_START": "1", "BROKEN_KEY": "never-log-this"}),
            "fake": stdio_entry(),
        }
    )
    await asyncio.wait_for(mcp.wait_connected("fake"), timeout=30)
    assert not mcp.connected("broken")
    assert all(spec.name.startswith("fake__") for spec in mcp.specs())
    missing = await mcp.call("broken__lookup", {"key": "a"})
    assert missing.is_error and "no connected MCP server" in missing.text

    def retries() -> int:
        return sum("MCP server broken" in r.getMessage() and "retrying" in r.getMessage() for r in caplog.records)

    await wait_until(lambda: retries() >= 2, timeout=20, what="two retries of the broken server")
    assert "never-log-this" not in caplog.text


async def test_a_command_that_does_not_exist_is_logged_and_retried(
    running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    mcp = await running({"ghost": {"command": "/nonexistent/mcp-server", "args": ["--token", "arg-secret"]}})
    assert mcp.specs() == [] and not mcp.connected("ghost")
    assert "MCP server ghost (mcp-server) is unavailable" in caplog.text
    assert "arg-secret" not in caplog.text


async def test_a_server_that_dies_mid_call_gives_an_error_result_then_reconnects(running: Any) -> None:
    mcp = await running({"fake": stdio_entry()})
    died = await mcp.call("fake__die", {})
    assert died.is_error and "went away" in died.text
    await asyncio.wait_for(mcp.wait_connected("fake"), timeout=30)
    await wait_until(lambda: mcp.connected("fake"), timeout=10, what="the reconnection")
    assert (await mcp.call("fake__lookup", {"key": "c"})).text == "value of c is 42"


async def test_a_server_killed_while_idle_is_noticed_and_restarted(running: Any) -> None:
    mcp = await running({"fake": stdio_entry()})
    first = int((await mcp.call("fake__pid", {})).text)
    os.kill(first, signal.SIGKILL)
    await wait_until(lambda: not mcp.connected("fake"), timeout=10, what="the idle ping noticing the death")
    await asyncio.wait_for(mcp.wait_connected("fake"), timeout=30)
    assert int((await mcp.call("fake__pid", {})).text) != first


async def test_a_timed_out_call_leaves_the_connection_usable(running: Any) -> None:
    mcp = await running({"fake": stdio_entry()})
    result = await ToolBox([mcp], timeout_s=0.3).execute(
        ToolCall.from_raw(id="c1", name="fake__slow", raw_arguments='{"seconds": 5}'), approve=None
    )
    assert result.is_error and "did not answer" in result.text
    assert (await mcp.call("fake__lookup", {"key": "d"})).text == "value of d is 42"


async def test_stop_ends_the_child_process(running: Any) -> None:
    mcp = await running({"fake": stdio_entry()})
    pid = int((await mcp.call("fake__pid", {})).text)
    await mcp.stop()
    assert mcp.specs() == [] and not mcp.connected("fake")

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    await wait_until(gone, timeout=10, what="the server process exiting")


# -- MCP_CONFIG errors ------------------------------------------------------------------------------------------


def config_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "mcp.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MCPConfigError) as caught:
        load_mcp_config(path)
    return str(caught.value)


def test_config_errors_name_the_file_the_server_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "absent.json"
    with pytest.raises(MCPConfigError, match=r"absent\.json: cannot read the file"):
        load_mcp_config(missing)
    assert "not valid JSON" in config_error(tmp_path, "{nope")
    assert 'top-level "mcpServers"' in config_error(tmp_path, '{"servers": {}}')
    both = config_error(tmp_path, '{"mcpServers": {"files": {"command": "x", "url": "http://h/mcp"}}}')
    assert "mcp.json" in both and "server 'files'" in both and 'either "command"' in both
    approval = config_error(tmp_path, '{"mcpServers": {"files": {"command": "x", "approval": "maybe"}}}')
    assert "server 'files', approval" in approval and '"always", "never" or "auto"' in approval
    secret = config_error(tmp_path, '{"mcpServers": {"h": {"url": "ftp://h", "headers": {"A": "hide-me"}}}}')
    assert "http:// or https://" in secret and "hide-me" not in secret


def test_the_widely_used_shape_loads_with_keys_we_do_not_use(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "mcp.json",
        {
            "files": {"type": "stdio", "command": "npx", "args": ["-y", "pkg"], "env": {"K": "v"}, "autoApprove": []},
            "remote": {"url": "https://mcp.example.com/mcp?token=abc", "headers": {"Authorization": "Bearer t"}},
            "off": {"command": "x", "disabled": True},
        },
    )
    config = load_mcp_config(path)
    assert list(config.enabled()) == ["files", "remote"]
    assert config.servers["remote"].where() == "https://mcp.example.com"
    assert set(config.servers["remote"].secrets()) == {"Bearer t", "token=abc"}
    assert "Bearer t" not in repr(config)
