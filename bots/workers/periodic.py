"""Periodic: a coroutine run every so many seconds beside the bot until stopped, its failures logged.

The erasure journal poll and the housekeeping round both need exactly this; one home keeps their start, stop and
error handling the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Periodic:
    """Calls ``work`` every ``interval_s()`` seconds (read at each round) once started; :meth:`start` is idempotent."""

    def __init__(self, *, name: str, interval_s: Callable[[], float], work: Callable[[], Awaitable[object]]) -> None:
        self._name = name
        self._interval_s = interval_s
        self._work = work
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._every_interval())

    async def _every_interval(self) -> None:
        while True:
            interval = self._interval_s()
            await asyncio.sleep(interval)
            try:
                await self._work()
            except Exception:
                log.exception("%s failed; trying again in %.0f s", self._name, interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
