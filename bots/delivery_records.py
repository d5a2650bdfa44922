"""Delivery records are kept only while a redelivery is possible: pruned at start-up, then about hourly.

``delivered_events`` recognises a platform's redelivery (Slack retries for about an hour: +0, +1, +5
minutes). A record whose work is done is useless after that, so one older than ``RETENTION`` goes, unless its
message still waits for an answer (the answer marks it handled). Without this the table grows with every
event for the life of the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from storage.sessions import DeliveredEvents

log = logging.getLogger(__name__)

RETENTION = timedelta(days=7)
INTERVAL_S = 3600.0


class DeliveryRecordPruning:
    """Runs :meth:`run_once` now (the caller awaits it) and every ``interval_s`` seconds once started."""

    def __init__(
        self, *, events: DeliveredEvents, clock: Callable[[], datetime], interval_s: float | None = None
    ) -> None:
        self._events = events
        self._clock = clock
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        """Prune what is past the retention window; return how many records went. Never raises."""
        try:
            removed = await self._events.prune(received_before=self._clock() - RETENTION)
        except Exception:
            log.exception("could not prune old delivery records; trying again later")
            return 0
        if removed:
            log.info("pruned %d delivery record(s) older than %s", removed, RETENTION)
        return removed

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._every_interval())

    async def _every_interval(self) -> None:
        while True:
            # Read at each round, so a test (or an operator's patch) can shorten it.
            await asyncio.sleep(INTERVAL_S if self._interval_s is None else self._interval_s)
            await self.run_once()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
