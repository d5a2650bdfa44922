"""The loopback HTTP server under every fake: an aiohttp app on 127.0.0.1, on a free port."""

from __future__ import annotations

from aiohttp import web


class LoopbackServer:
    """Start an app, know its port, stop it without waiting on open connections."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host  # another loopback address (127.0.0.2) stands for a host that is not the platform's
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self, app: web.Application) -> int:
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
