"""Housekeeping a long-running bot does on its own, at start-up and then every hour.

- Retention: with ``LOG_RETENTION_DAYS``, messages older than that are purged at start-up and then once a day.
  The purge goes through ``storage/erasure.py``, so the summaries that covered those messages are invalidated
  and live sessions drop them too. A message still waiting for an answer is never purged.
- Delivery records: ``delivered_events`` recognises a platform's redelivery (Slack retries for about an hour:
  +0, +1, +5 minutes). A record whose work is done is useless after that, so one older than a week goes,
  unless its message still waits for an answer (the answer marks it handled). Without this the table would
  grow with every event for the life of the database.
- The erasure journal: rows older than an hour have been applied by every running router (they poll every
  few seconds) and are dropped. A row that still owes its thread a rename on the platform (a title made from
  forgotten text, blanked while no bot of that platform ran: ``bots/router/forgotten_titles.py``) is kept for
  ``TITLES_OWED_KEPT``, so the next start renames it.

A job that fails is logged and tried again at the next round; it never stops the others or the bot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from bots.workers.periodic import Periodic
from storage.protocols import DeliveredEvents, ErasureStore

log = logging.getLogger(__name__)

INTERVAL_S = 3600.0
RETENTION_EVERY = timedelta(days=1)
DELIVERY_RECORDS_KEPT = timedelta(days=7)
JOURNAL_KEPT = timedelta(hours=1)
TITLES_OWED_KEPT = timedelta(days=30)


class Housekeeping:
    """Runs :meth:`run_once` now (the caller awaits it) and every ``INTERVAL_S`` seconds once started."""

    def __init__(
        self,
        *,
        erasures: ErasureStore,
        events: DeliveredEvents,
        retention_days: int | None,
        clock: Callable[[], datetime],
    ) -> None:
        self._erasures = erasures
        self._events = events
        self._retention = None if retention_days is None else timedelta(days=retention_days)
        self._clock = clock
        self._retention_ran: datetime | None = None
        self._rounds = Periodic(name="housekeeping", interval_s=lambda: INTERVAL_S, work=self.run_once)

    async def run_once(self) -> None:
        """One round of every job that is due. Never raises."""
        now = self._clock()
        if self._retention is not None and (
            self._retention_ran is None or now - self._retention_ran >= RETENTION_EVERY
        ):
            cutoff = now - self._retention
            purged = await self._job("retention", self._erasures.purge_older_than(cutoff=cutoff, now=now))
            self._retention_ran = now
            if purged:
                log.info("retention: purged %d message(s) older than %s", purged, self._retention)
        old_records = now - DELIVERY_RECORDS_KEPT
        pruned = await self._job("delivery records", self._events.prune(received_before=old_records))
        if pruned:
            log.info("pruned %d delivery record(s) older than %s", pruned, DELIVERY_RECORDS_KEPT)
        await self._job(
            "erasure journal",
            self._erasures.prune_journal(before=now - JOURNAL_KEPT, owed_before=now - TITLES_OWED_KEPT),
        )

    @staticmethod
    async def _job(name: str, work: Coroutine[Any, Any, int]) -> int:
        try:
            return await work
        except Exception:
            log.exception("housekeeping (%s) failed; trying again at the next round", name)
            return 0

    def start(self) -> None:
        self._rounds.start()

    async def stop(self) -> None:
        await self._rounds.stop()
