"""MCP servers as a ToolProvider, through the official ``mcp`` SDK (stdio and streamable HTTP).

Each configured server gets one long-lived asyncio task, a *link*, that owns its connection: it enters the
transport's and the ``ClientSession``'s context managers, initializes, lists the tools, and then waits; when
the connection breaks it leaves those contexts in the same task (anyio's task groups insist) and connects again
after a backoff that doubles up to a ceiling. Meanwhile the server's tools are simply not offered, and a call
already in flight gets an error result. Nothing waits on a server: :meth:`MCPServers.start` returns at once, so
the bot's readiness never depends on one, and :meth:`MCPServers.stop` cancels each link's scope so the SDK's own
shutdown (close stdin, wait, kill the process tree) runs.

A dead server is noticed by the call that finds its connection closed, or by a ping every
``health_interval_s`` while idle.

Secrets: a stdio server's process gets its configured ``env`` plus a minimal safe environment (PATH, HOME,
LANG, LC_*, TMPDIR, and the SDK's own short list), never ``os.environ``, so the bot's Discord, Slack and model
tokens cannot reach it. Header and env values never appear in a log line: every message that could carry one
(an exception's text) passes through :meth:`_Link.redact`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TextIO

import anyio
import httpx2
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, CallToolResult, PaginatedRequestParams, TextContent, Tool

from agent.mcp_config import MCPConfig, ServerSettings, load_mcp_config
from agent.tools import ToolOutput, ToolSpec, model_tool_name

log = logging.getLogger(__name__)

SAFE_ENV_NAMES = ("PATH", "HOME", "LANG", "TMPDIR")
SAFE_ENV_PREFIXES = ("LC_",)
MAX_TOOL_PAGES = 20
MAX_DESCRIPTION_CHARS = 1024
STOP_GRACE_S = 8.0
STABLE_AFTER_S = 30.0  # a connection that lasted this long resets the backoff; a flapping server backs off


def child_environment(configured: dict[str, str]) -> dict[str, str]:
    """A stdio server's environment: the safe minimum from ours, then what its config sets."""
    safe = {
        name: value
        for name, value in os.environ.items()
        if (name in SAFE_ENV_NAMES or name.startswith(SAFE_ENV_PREFIXES)) and not value.startswith("()")
    }
    return safe | configured


class _Link:
    """One server's connection, owned by one task; ``specs`` is empty while it is not connected."""

    def __init__(self, name: str, settings: ServerSettings, owner: MCPServers) -> None:
        self.name = name
        self.settings = settings
        self._owner = owner
        self.session: ClientSession | None = None
        self.tools: dict[str, tuple[ToolSpec, str]] = {}  # model name -> (spec, the server's own tool name)
        self.connected = asyncio.Event()
        self.settled = asyncio.Event()  # the first attempt has succeeded or failed
        self._broken = asyncio.Event()
        self._stopping = False
        self._scope: anyio.CancelScope | None = None
        self._wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self._secrets = settings.secrets()
        self._up_since: float | None = None

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    # -- the link's task ------------------------------------------------------------------------------------

    async def run(self) -> None:
        delay = self._owner.backoff_initial_s
        while not self._stopping:
            with anyio.CancelScope() as scope:
                self._scope = scope
                try:
                    await self._connect_and_serve()
                except Exception as exc:
                    log.warning(
                        "MCP server %s (%s) is unavailable: %s; retrying in %.1fs",
                        self.name,
                        self.settings.where(),
                        self.redact(_describe(exc)),
                        delay,
                    )
                finally:
                    self._disconnected()
            self._scope = None
            if self._stopping:
                return
            up_since, self._up_since = self._up_since, None
            if up_since is not None and time.monotonic() - up_since >= STABLE_AFTER_S:
                delay = self._owner.backoff_initial_s
            await self._sleep(random.uniform(delay / 2, delay))
            delay = min(self._owner.backoff_max_s, delay * 2)

    async def _connect_and_serve(self) -> None:
        async with self._transport() as (read, write), ClientSession(read, write) as session:
            with anyio.fail_after(self._owner.connect_timeout_s):
                await session.initialize()
                tools = await _all_tools(session)
            self.session, self.tools = session, self._specs(tools)
            self._up_since = time.monotonic()
            self._broken.clear()
            self.connected.set()
            self.settled.set()
            log.info("MCP server %s connected: %d tool(s)", self.name, len(self.tools))
            await self._until_broken(session)
            self._disconnected()
            log.warning("MCP server %s stopped answering; reconnecting", self.name)

    @contextlib.asynccontextmanager
    async def _transport(self) -> AsyncIterator[tuple[Any, Any]]:
        settings = self.settings
        if settings.command is not None:
            env = child_environment({k: v.get_secret_value() for k, v in settings.env.items()})
            params = StdioServerParameters(command=settings.command, args=settings.args, env=env, cwd=settings.cwd)
            async with stdio_client(params, errlog=self._owner.errlog) as streams:
                yield streams
            return
        headers = {k: v.get_secret_value() for k, v in settings.headers.items()}
        timeout = httpx2.Timeout(self._owner.connect_timeout_s, read=300.0)
        async with (
            httpx2.AsyncClient(headers=headers, timeout=timeout) as client,
            streamable_http_client(settings.url or "", http_client=client) as streams,
        ):
            yield streams

    async def _until_broken(self, session: ClientSession) -> None:
        """Return when a call found the connection closed, or an idle ping fails."""
        while True:
            try:
                await asyncio.wait_for(self._broken.wait(), timeout=self._owner.health_interval_s)
                return
            except TimeoutError:
                pass
            try:
                with anyio.fail_after(self._owner.connect_timeout_s):
                    await session.send_ping()
            except Exception:
                return

    def _disconnected(self) -> None:
        if self.session is not None:
            log.info("MCP server %s disconnected; its tools are left out until it is back", self.name)
        self.session, self.tools = None, {}
        self.connected.clear()
        self.settled.set()

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def stop(self) -> None:
        self._stopping = True
        if self._scope is not None:
            self._scope.cancel()
        self._wake.set()
        if self.task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.task), timeout=STOP_GRACE_S)
            except TimeoutError:
                log.warning("MCP server %s did not shut down in %gs; abandoning it", self.name, STOP_GRACE_S)
                self.task.cancel()

    # -- tools ----------------------------------------------------------------------------------------------

    def _specs(self, tools: list[Tool]) -> dict[str, tuple[ToolSpec, str]]:
        specs: dict[str, tuple[ToolSpec, str]] = {}
        for tool in tools:
            name = model_tool_name(self.name, tool.name)
            if name in specs:
                log.warning(
                    "MCP server %s: tools %r and %r share the name %s; keeping the first",
                    self.name,
                    specs[name][1],
                    tool.name,
                    name,
                )
                continue
            description = tool.description or tool.title or (tool.annotations.title if tool.annotations else None)
            spec = ToolSpec(
                name=name,
                description=(description or f"{tool.name} from {self.name}")[:MAX_DESCRIPTION_CHARS],
                input_schema=tool.input_schema or {"type": "object"},
                read_only=bool(tool.annotations and tool.annotations.read_only_hint),
                approval=self.settings.approval_of(tool.name),
            )
            specs[name] = (spec, tool.name)
        return specs

    async def call(self, tool: str, arguments: dict[str, Any]) -> ToolOutput:
        session = self.session
        if session is None:
            return ToolOutput(f"Error: the MCP server {self.name} is not connected right now.", is_error=True)
        try:
            result = await session.call_tool(tool, arguments)
        except MCPError as exc:
            if exc.error.code == CONNECTION_CLOSED:
                if self.session is session:
                    self._disconnected()
                    self._broken.set()
                log.warning("MCP server %s closed its connection during a call to %s", self.name, tool)
                return ToolOutput(f"Error: the MCP server {self.name} went away during the call.", is_error=True)
            return ToolOutput(f"Error from the MCP server {self.name}: {self.redact(exc.error.message)}", True)
        return ToolOutput(_result_text(result), is_error=bool(result.is_error))


class MCPServers:
    """Every configured MCP server as one :class:`~agent.tools.ToolProvider`.

    Built by the composition root from ``MCP_CONFIG``; ``start()`` once the platforms connect, ``stop()`` on
    shutdown::

        servers = MCPServers.from_file(settings.mcp_config)
        await servers.start()            # returns at once; servers connect in the background
        box = ToolBox([servers], timeout_s=settings.tool_timeout_s)
        ...
        await servers.stop()
    """

    def __init__(
        self,
        config: MCPConfig,
        *,
        connect_timeout_s: float = 30.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        health_interval_s: float = 15.0,
        errlog: TextIO | None = None,
    ) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.health_interval_s = health_interval_s
        self.errlog = _with_fileno(errlog or sys.stderr)
        self._links = [_Link(name, settings, self) for name, settings in config.enabled().items()]

    @classmethod
    def from_file(cls, path: Path, **options: Any) -> MCPServers:
        """Servers from an ``mcpServers`` JSON file (raises :class:`~agent.mcp_config.MCPConfigError`)."""
        return cls(load_mcp_config(path), **options)

    @property
    def names(self) -> list[str]:
        return [link.name for link in self._links]

    async def start(self) -> None:
        """Start connecting every server in the background; returns at once."""
        for link in self._links:
            if link.task is None:
                link.task = asyncio.create_task(link.run(), name=f"mcp-server-{link.name}")

    async def stop(self) -> None:
        """Close every connection and stop every stdio server process."""
        await asyncio.gather(*(link.stop() for link in self._links))

    async def wait_settled(self) -> None:
        """Wait until every server has connected or failed once (tests and benchmarks; the bot never waits)."""
        await asyncio.gather(*(link.settled.wait() for link in self._links))

    def connected(self, name: str) -> bool:
        return any(link.name == name and link.session is not None for link in self._links)

    async def wait_connected(self, name: str) -> None:
        """Wait until server ``name`` is connected (wrap in a timeout)."""
        link = next(link for link in self._links if link.name == name)
        await link.connected.wait()

    def specs(self) -> list[ToolSpec]:
        return [spec for link in self._links for spec, _tool in link.tools.values()]

    def tool_names(self, name: str) -> list[str] | None:
        """The tools server ``name`` offers now, or None when it is not connected (``threadkeeper check``)."""
        link = next(link for link in self._links if link.name == name)
        return None if link.session is None else sorted(link.tools)

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolOutput:
        for link in self._links:
            found = link.tools.get(name)
            if found is not None:
                return await link.call(found[1], arguments)
        return ToolOutput(f"Error: no connected MCP server offers {name!r} right now.", is_error=True)


async def _all_tools(session: ClientSession) -> list[Tool]:
    tools: list[Tool] = []
    cursor: str | None = None
    for _page in range(MAX_TOOL_PAGES):
        params = PaginatedRequestParams(cursor=cursor) if cursor else None
        listing = await session.list_tools(params=params)
        tools.extend(listing.tools)
        cursor = listing.next_cursor
        if not cursor:
            break
    return tools


def _result_text(result: CallToolResult) -> str:
    """A tool result as text for the model: text blocks as they are, other blocks named, else the JSON."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, TextContent):
            parts.append(block.text)
        elif block.type == "resource":
            resource = block.resource
            parts.append(getattr(resource, "text", None) or f"[binary resource {resource.uri}]")
        elif block.type == "resource_link":
            parts.append(f"[resource {block.uri}]")
        else:
            parts.append(f"[{block.type} content, {getattr(block, 'mime_type', 'unknown type')}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, default=str))
    return "\n".join(parts)


def _describe(exc: BaseException) -> str:
    """The innermost useful sentence of an error, unwrapping anyio's exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"


__all__ = ["MCPServers", "child_environment"]


def _with_fileno(stream: TextIO) -> TextIO:
    """A child's stderr needs a real file: a replaced ``sys.stderr`` (a capture, a wrapper) falls back to fd 2."""
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.__stderr__ or stream
    return stream
