"""The tool settings: defaults, comma lists, blanks meaning unset, and errors naming the variable and the fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bots.config import HINTS, ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_defaults() -> None:
    s = settings()
    assert (s.mcp_config, s.max_tool_steps, s.tool_timeout_s) == (None, 8, 60.0)
    assert (s.builtin_tools, s.tool_approvers, s.approval_timeout_s) == (("search_thread",), frozenset(), 600.0)


def test_values_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_CONFIG", "/etc/threadkeeper/mcp.json")
    monkeypatch.setenv("BUILTIN_TOOLS", "")
    monkeypatch.setenv("TOOL_APPROVERS", "U1, U2,")
    monkeypatch.setenv("MAX_TOOL_STEPS", "3")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.mcp_config == Path("/etc/threadkeeper/mcp.json")
    assert s.builtin_tools == () and s.tool_approvers == frozenset({"U1", "U2"}) and s.max_tool_steps == 3
    monkeypatch.setenv("MCP_CONFIG", "")
    assert Settings(_env_file=None).mcp_config is None  # type: ignore[call-arg]


def test_invalid_values_name_the_variable_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILTIN_TOOLS", "search_thread,shell")
    monkeypatch.setenv("MAX_TOOL_STEPS", "0")
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    message = str(caught.value)
    assert "BUILTIN_TOOLS is invalid: unknown built-in tool 'shell'" in message and "search_thread" in message
    assert "MAX_TOOL_STEPS is invalid" in message and HINTS["MAX_TOOL_STEPS"] in message


def test_env_example_lists_every_tool_setting() -> None:
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    for name in (
        "MCP_CONFIG",
        "MAX_TOOL_STEPS",
        "TOOL_TIMEOUT_S",
        "BUILTIN_TOOLS",
        "TOOL_APPROVERS",
        "APPROVAL_TIMEOUT_S",
    ):
        assert re.search(rf"^{name}=", example, re.MULTILINE), name
        assert name in HINTS
