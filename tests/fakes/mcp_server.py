"""A real MCP server for tests, written with the SDK's ``MCPServer``: over stdio as a child, or HTTP on loopback.

``python -m tests.fakes.mcp_server`` serves it over stdio, which is how the bot starts a configured server, so
the tests exercise the real transport, the real handshake and a real process that can die. :func:`serving_http`
serves the same tools over streamable HTTP on 127.0.0.1 inside the test's own event loop.

The tools cover what the agent must cope with: ``lookup`` is annotated read-only, ``create_ticket`` has a side
effect (and needs approval under ``auto``), ``slow`` outlasts a short timeout, ``explode`` raises (an error
result), ``die`` kills the server in the middle of the call, ``echo`` returns whatever text it is given (huge
results, forged system text), and ``env_names`` lists the names, never the values, of its own environment, to
prove which variables a stdio child inherited, and ``pid`` its process id (so a test can kill it).
``request_headers`` (HTTP only) fingerprints the headers it got.
With ``FAKE_MCP_CALLS_FILE`` set, ``create_ticket`` and ``slow_ticket`` (side-effecting; the latter writes its
line when it starts, then waits) append a line to that file: how many times a call really ran, across processes.

With ``FAKE_MCP_FAIL_START=1`` in its environment the stdio server exits before it speaks: a server that never
starts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations

SERVER_NAME = "fake"
TICKETS: list[str] = []
ROOT = Path(__file__).resolve().parents[2]


def fingerprint(value: str) -> str:
    """A value's sha256 prefix: proves a secret arrived without echoing it into any log."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def stdio_entry(**settings: Any) -> dict[str, Any]:
    """An ``mcpServers`` entry that starts this server over stdio with the test's Python."""
    return {"command": sys.executable, "args": ["-m", "tests.fakes.mcp_server"], "cwd": str(ROOT), **settings}


def write_config(path: Path, servers: dict[str, dict[str, Any]]) -> Path:
    """Write an ``MCP_CONFIG`` file holding ``servers``; returns its path."""
    path.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
    return path


def count_call(line: str) -> None:
    """One line in ``FAKE_MCP_CALLS_FILE`` (when set) per side-effecting call that ran."""
    path = os.environ.get("FAKE_MCP_CALLS_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as calls:
            calls.write(line + "\n")


def calls_made(path: Path) -> list[str]:
    """The lines :func:`count_call` wrote to ``path``."""
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def build_server() -> MCPServer:
    server: MCPServer = MCPServer(name=SERVER_NAME, log_level="WARNING")

    @server.tool(description="Look up a value by key.", annotations=ToolAnnotations(read_only_hint=True))
    def lookup(key: str) -> str:
        return f"value of {key} is 42"

    @server.tool(description="Create a ticket with a title; returns its number.")
    def create_ticket(title: str, priority: int = 3) -> str:
        TICKETS.append(title)
        count_call(f"create_ticket {title}")
        return f"created ticket #{len(TICKETS)}: {title} (priority {priority})"

    @server.tool(description="Create a ticket slowly: the ticket exists at once, the answer comes after seconds.")
    async def slow_ticket(title: str, seconds: float) -> str:
        count_call(f"slow_ticket {title}")
        await asyncio.sleep(seconds)
        return f"created ticket {title} slowly"

    @server.tool(description="Wait some seconds, then answer.", annotations=ToolAnnotations(read_only_hint=True))
    async def slow(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return f"slept {seconds}s"

    @server.tool(description="Always fails.", annotations=ToolAnnotations(read_only_hint=True))
    def explode() -> str:
        raise RuntimeError("the fake tool exploded")

    @server.tool(description="Kills the server process mid-call.", annotations=ToolAnnotations(read_only_hint=True))
    def die() -> str:
        sys.stdout.flush()
        os._exit(3)

    @server.tool(description="Returns the text it is given.", annotations=ToolAnnotations(read_only_hint=True))
    def echo(text: str, repeat: int = 1) -> str:
        return text * repeat

    @server.tool(description="Write a note (pretends to); its schema lists path before content.")
    def write_note(path: str, content: str) -> str:
        return f"wrote {len(content)} characters to {path}"

    @server.tool(description="This server's process id.", annotations=ToolAnnotations(read_only_hint=True))
    def pid() -> str:
        return str(os.getpid())

    @server.tool(description="Names of this process's environment variables.")
    def env_names() -> str:
        return ",".join(sorted(os.environ))

    @server.tool(description="The X- headers of the HTTP request, each as name=sha256 prefix of its value.")
    def request_headers(ctx: Context) -> str:
        request = getattr(ctx.request_context, "request", None)
        headers = getattr(request, "headers", None) or {}
        return ",".join(sorted(f"{k.lower()}={fingerprint(v)}" for k, v in headers.items() if k.lower()[:2] == "x-"))

    return server


@dataclass
class HTTPServing:
    """A streamable-HTTP MCP server on loopback; ``url`` is its endpoint."""

    url: str
    port: int


@contextlib.asynccontextmanager
async def serving_http() -> AsyncIterator[HTTPServing]:
    """Serve the fake tools over streamable HTTP on 127.0.0.1 (a free port) for the duration of the block."""
    import uvicorn

    app = build_server().streamable_http_app()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield HTTPServing(url=f"http://127.0.0.1:{port}/mcp", port=port)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    if os.environ.get("FAKE_MCP_FAIL_START") == "1":
        print("fake MCP server: refusing to start", file=sys.stderr)
        sys.exit(7)
    build_server().run("stdio")


if __name__ == "__main__":
    main()
