"""``MCP_CONFIG``: the ``mcpServers`` JSON file that names the MCP servers the bot may use, validated once.

The shape is the one most MCP clients read, plus our approval settings::

    {"mcpServers": {
        "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/srv/docs"],
                  "env": {"SOME_KEY": "..."}, "approval": "auto", "tools": {"write_file": {"approval": "always"}}},
        "tickets": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer ..."}}
    }}

A server has either a ``command`` (stdio) or a ``url`` (streamable HTTP). Keys other clients use and we do not
(``type``, ``autoApprove``, ...) are accepted and ignored. ``env`` and ``headers`` values are secrets: they are
``SecretStr`` and never appear in an error message or a log line. Every error names the file, the server and
the fix, like the bot's other settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from agent.tools import Approval

EXAMPLE = '{"mcpServers": {"NAME": {"command": "...", "args": []}, "NAME2": {"url": "https://.../mcp"}}}'


class MCPConfigError(Exception):
    """``MCP_CONFIG`` cannot be used; the message names the file, the server and what to change."""


class ToolSettings(BaseModel):
    """Per-tool overrides under a server's ``tools``."""

    model_config = ConfigDict(extra="ignore")

    approval: Approval | None = None


class ServerSettings(BaseModel):
    """One entry of ``mcpServers``."""

    model_config = ConfigDict(extra="ignore")

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, SecretStr] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    approval: Approval = "auto"
    tools: dict[str, ToolSettings] = Field(default_factory=dict)
    disabled: bool = False

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("url must be an http:// or https:// URL of the server's MCP endpoint")
        return value

    @model_validator(mode="after")
    def _one_transport(self) -> ServerSettings:
        if (self.command is None) == (self.url is None):
            raise ValueError('give either "command" (a stdio server) or "url" (a streamable-HTTP server), not both')
        if self.command is not None and not self.command.strip():
            raise ValueError('"command" must not be empty')
        return self

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self.command is not None else "http"

    def approval_of(self, tool: str) -> Approval:
        """The tool's own approval setting, else the server's."""
        override = self.tools.get(tool)
        return override.approval if override is not None and override.approval is not None else self.approval

    def secrets(self) -> list[str]:
        """Every configured value that must never be logged (env and header values, the URL's query)."""
        values = [v.get_secret_value() for v in [*self.env.values(), *self.headers.values()]]
        if self.url and urlsplit(self.url).query:
            values.append(urlsplit(self.url).query)
        return [v for v in values if v]

    def where(self) -> str:
        """The server's address safe for a log: the command's name, or the URL's scheme and host."""
        if self.command is not None:
            return Path(self.command).name
        parts = urlsplit(self.url or "")
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


class MCPConfig(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="ignore")

    servers: dict[str, ServerSettings] = Field(alias="mcpServers")

    @field_validator("servers")
    @classmethod
    def _named(cls, value: dict[str, ServerSettings]) -> dict[str, ServerSettings]:
        for name in value:
            if not name.strip():
                raise ValueError("a server name must not be empty")
        return value

    def enabled(self) -> dict[str, ServerSettings]:
        return {name: server for name, server in self.servers.items() if not server.disabled}


def load_mcp_config(path: Path) -> MCPConfig:
    """Read and validate ``path``; every problem is an :class:`MCPConfigError` naming file, server and fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MCPConfigError(
            f"MCP_CONFIG={path}: cannot read the file ({exc.strerror or exc}). Set MCP_CONFIG to the path of a "
            f"JSON file such as {EXAMPLE}, or leave it unset for no MCP servers."
        ) from None
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MCPConfigError(
            f"MCP_CONFIG={path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}). "
            f"Fix the file; its shape is {EXAMPLE}."
        ) from None
    try:
        return MCPConfig.model_validate(data)
    except ValidationError as exc:
        raise MCPConfigError(_describe(path, exc)) from None


def _describe(path: Path, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = [str(part) for part in error["loc"]]
        reason = error["msg"].removeprefix("Value error, ")
        if not loc or loc[0] != "mcpServers" or (len(loc) == 1 and error["type"] == "missing"):
            problems.append(f'the file needs a top-level "mcpServers" object ({reason}); its shape is {EXAMPLE}')
        elif len(loc) == 1:
            problems.append(f'"mcpServers" must map server names to settings ({reason})')
        else:
            field = ".".join(loc[2:]) or "its settings"
            problems.append(f"server {loc[1]!r}, {field}: {reason}; {_fix(loc[2:])}")
    return f"MCP_CONFIG={path}: " + " ".join(f"{p}." for p in problems)


def _fix(field: list[str]) -> str:
    if field[:1] == ["approval"] or field[-1:] == ["approval"]:
        return 'use "always", "never" or "auto"'
    if field[:1] in (["env"], ["headers"]):
        return "give string values"
    if field[:1] == ["args"]:
        return "give a list of strings"
    return f"see the example {EXAMPLE}"


__all__ = ["MCPConfig", "MCPConfigError", "ServerSettings", "ToolSettings", "load_mcp_config"]
