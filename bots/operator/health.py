"""The operator's port (METRICS_PORT): ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz``.

None of them asks who is calling, so the port listens on 127.0.0.1 unless METRICS_HOST says otherwise (a
scraper in another container needs ``0.0.0.0``). Slack's HTTP mode is a separate server, on PORT and every
interface, since Slack itself must reach its ``/slack/events``; METRICS_HOST does not change it.

``/healthz`` answers 200 while the process's event loop runs. ``/readyz`` answers 200 only when every
configured adapter is connected and the database takes a write lock, else 503 with what is not ready, so an
orchestrator holds traffic and restarts. Both are served in every mode, Discord included; Slack's HTTP mode
keeps its own port and ``/healthz``.

The server starts before the adapters connect, so ``/readyz`` says "not yet" rather than refusing the
connection during start-up. aiohttp's server side and prometheus-client are imported only when it starts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bots.config import ConfigError
from bots.operator import metrics
from bots.router.threads import ThreadRouter
from bots.seam.ports import PlatformAdapter
from storage.protocols import DatabaseProbe

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)


@dataclass
class Health:
    """What readiness depends on; the composition root and ``run`` fill it in as the parts come up."""

    expected: tuple[str, ...] = ()  # adapter names that must be connected
    database: DatabaseProbe | None = None
    router: ThreadRouter | None = None
    adapters: dict[str, PlatformAdapter] = field(default_factory=dict)

    async def readiness(self) -> dict[str, bool]:
        """Each part's state: ``database`` and one entry per expected adapter."""
        parts = {"database": self.database is not None and await self.database.writable()}
        for name in self.expected:
            adapter = self.adapters.get(name)
            parts[name] = adapter is not None and await adapter.is_connected()
        return parts

    async def refresh_gauges(self, gauges: metrics.Metrics) -> None:
        """Gauges read at scrape time rather than maintained on every change."""
        if self.router is not None:
            gauges.live_sessions.set(self.router.live_sessions)
        if self.database is not None:
            gauges.threads_waiting.set(await self.database.waiting_threads())


def health_app(health: Health) -> web.Application:
    """The three routes; creating the app turns metrics on (prometheus-client is imported here)."""
    from aiohttp import web
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    gauges = metrics.enable()

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        parts = await health.readiness()
        ready = all(parts.values())
        body = json.dumps({"ready": ready, "parts": parts})
        return web.Response(status=200 if ready else 503, text=body, content_type="application/json")

    async def scrape(_: web.Request) -> web.Response:
        await health.refresh_gauges(gauges)
        response = web.Response(body=generate_latest(REGISTRY))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", scrape)
    return app


@asynccontextmanager
async def serve_health(health: Health, *, port: int | None, host: str = "127.0.0.1") -> AsyncIterator[int | None]:
    """Serve :func:`health_app` on ``host``:``port`` (nothing when ``port`` is None); yields the port bound."""
    if port is None:
        yield None
        return
    from aiohttp import web

    runner = web.AppRunner(health_app(health), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host=host, port=port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(
            f"METRICS_PORT={port} on METRICS_HOST={host} cannot be served ({exc.strerror or exc}). Set METRICS_PORT "
            "to a free port (or leave it empty), and METRICS_HOST to an address of this machine (e.g. 127.0.0.1)."
        ) from None
    server = site._server
    bound = int(server.sockets[0].getsockname()[1]) if server is not None else port  # type: ignore[attr-defined]
    log.info("metrics and health on %s port %d (/metrics, /healthz, /readyz)", host, bound)
    try:
        yield bound
    finally:
        await runner.cleanup()
