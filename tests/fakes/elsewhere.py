"""A host that is not the platform's: it serves a secret to anyone and records every request and its headers.

It listens on 127.0.0.2, another loopback address, standing for a cloud metadata service or a third party that
a file's URL (or a redirect) could name. A test asserts it received nothing, and never the bot's token.
"""

from __future__ import annotations

from types import TracebackType

from aiohttp import web

from tests.fakes.server import LoopbackServer

SECRET = "aws-secret-access-key=wJalrXUtnFEMI"


class Elsewhere:
    """``async with Elsewhere() as host``: ``host.url(path)`` to point at it, ``host.requests`` to check."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path, headers), in order
        self._server = LoopbackServer(host="127.0.0.2")

    def url(self, path: str = "/latest/meta-data/") -> str:
        return f"http://127.0.0.2:{self._server.port}{path}"

    async def _any(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.headers)))
        return web.Response(text=SECRET, content_type="text/plain")

    async def __aenter__(self) -> Elsewhere:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        await self._server.start(app)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._server.stop()
