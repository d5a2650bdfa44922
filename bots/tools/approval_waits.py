"""How long a call waits on its approval card, and what ends the wait: one rule for every worker and process.

A card times out ``APPROVAL_TIMEOUT_S`` after it was asked for, by the database's clock (``ApprovalRecord.age_s``,
read from m013's ``asked_epoch_s``). The wait of the process that posted the card, the wait of a turn a later
process resumed, and every click's in-time check (``ApprovalStore.decide(within_s=...)``, in the same statement as
the decision) all read that one clock, so no worker's own timer can accept a click another would call late, and a
card whose post was slow has no more time than one posted at once. The wait's timer is only a hint: when it fires,
the row is read again and the wait goes on while the database says time is left.

The process leaving (SIGTERM, a deploy) ends every wait at once and decides nothing: the card stays pending and
clickable, the turn journal keeps the call waiting on it, and the next process resumes the turn on the click
(``ApprovalFlow._decide_orphaned``). The turn ends as a cancelled one does (:class:`ProcessLeaving`), so a turn
that only waits for a person no longer holds the shutdown's grace for in-flight answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from agent.tools import Decision
from storage.protocols import ApprovalStore
from storage.records import ApprovalRecord


class ProcessLeaving(asyncio.CancelledError):
    """The process is shutting down while a call waits on its card: the turn ends undecided (a cancellation, so
    nothing on the way out mistakes it for a refusal or an error to report in the thread)."""


def time_left(record: ApprovalRecord, *, timeout_s: float, now: datetime) -> float:
    """Seconds until ``record`` times out, by the database's clock (``age_s``), which every worker reads alike; an
    approval asked for by a version before m013 (no ``age_s``) by ``now``, this process's clock."""
    if record.age_s is not None:
        return timeout_s - record.age_s
    if record.created_utc is None:
        return timeout_s
    asked = datetime.fromisoformat(record.created_utc)
    return (asked + timedelta(seconds=timeout_s) - now).total_seconds()


class ApprovalWaits:
    """Waits for decisions, each until its card's time is up by the database's clock or the process leaves."""

    def __init__(
        self,
        *,
        store: ApprovalStore,
        timeout_s: float,
        clock: Callable[[], datetime],
        leaving: asyncio.Event | None = None,
    ) -> None:
        self._store = store
        self._timeout_s = timeout_s
        self._clock = clock
        self._leaving = leaving  # set when the process starts shutting down (``threadkeeper run``'s SIGTERM)

    def time_left(self, record: ApprovalRecord) -> float:
        return time_left(record, timeout_s=self._timeout_s, now=self._clock())

    async def until_decided(self, approval_id: int, decided: asyncio.Future[Decision]) -> Decision | None:
        """The decision a click sets on ``decided``; None once the database says the card's time is up (or the row
        is no longer pending: the caller reads what it became). Raises :class:`ProcessLeaving` when the process
        leaves first."""
        while not decided.done():
            record = await self._store.get(approval_id=approval_id)
            if record is None or record.state != "pending":
                return None
            left = self.time_left(record)
            if left <= 0:
                return None
            await self._wait(approval_id, decided, left)
        return decided.result()

    async def _wait(self, approval_id: int, decided: asyncio.Future[Decision], left: float) -> None:
        """Until ``decided`` is set, ``left`` seconds pass, or the process leaves (raising). ``decided`` itself is
        never cancelled here: a click may still set it while the caller settles a timeout."""
        leave = None if self._leaving is None else asyncio.ensure_future(self._leaving.wait())
        try:
            waits: set[asyncio.Future[Any]] = {decided} if leave is None else {decided, leave}
            await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if leave is not None:
                leave.cancel()
        if not decided.done() and self._leaving is not None and self._leaving.is_set():
            raise ProcessLeaving(f"approval {approval_id} is left pending for the next process")
