"""Housekeeping a long-running bot does on its own: retention, and keeping the erasure journal short.

``LOG_RETENTION_DAYS`` purges messages older than that once at start-up and then once a day; the purge goes
through ``storage/erasure.py``, so the summaries that covered those messages are invalidated and live
sessions drop them too. A message still waiting for an answer is never purged. Journal rows older than an hour
have been applied by every running router (they poll every few seconds) and are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from storage.erasure import ErasureStore

log = logging.getLogger(__name__)

DAY_S = 24 * 3600.0
JOURNAL_KEPT = timedelta(hours=1)


class Housekeeping:
    """Runs :meth:`run_once` now and every ``interval_s`` seconds until stopped."""

    def __init__(
        self,
        *,
        erasures: ErasureStore,
        retention_days: int | None,
        clock: Callable[[], datetime],
        interval_s: float = DAY_S,
    ) -> None:
        self._erasures = erasures
        self._retention = None if retention_days is None else timedelta(days=retention_days)
        self._clock = clock
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        """Purge what retention says must go and prune the journal; return how many messages were purged."""
        now = self._clock()
        purged = 0
        if self._retention is not None:
            purged = await self._erasures.purge_older_than(cutoff=now - self._retention, now=now)
            if purged:
                log.info("retention: purged %d message(s) older than %s", purged, self._retention)
        await self._erasures.prune_journal(before=now - JOURNAL_KEPT)
        return purged

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._every_interval())

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.run_once()
            except Exception:
                log.exception("housekeeping failed; trying again in %.0f s", self._interval_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
