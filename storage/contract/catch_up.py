"""The contract of catching up: the "Where were we?" cards and the sessions their summaries seed.

Kept together because they are one flow: the first click on a card decides whether the next session starts
fresh or from a summary, and the next catch-up starts from the last session's summary. Both classes are in
``storage/sessions.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from storage.leases import Fence
from storage.records import CardRecord, StoredSummary


class SessionStore(Protocol):
    """Which summary seeded which session, so the next catch-up can be incremental."""

    async def record(
        self,
        *,
        thread_id: int,
        origin: str,
        model: str,
        started_utc: datetime,
        summary: str | None = None,
        summary_through_message_id: int | None = None,
    ) -> int: ...

    async def record_with_summary(
        self,
        *,
        thread_id: int,
        model: str,
        started_utc: datetime,
        summary: str,
        summary_through_message_id: int,
        erasures_seen: int,
    ) -> int | None:
        """Record a caught-up session unless the thread forgot something after ``erasures_seen``; None if so."""
        ...

    async def replace_summary(
        self, *, session_id: int, thread_id: int, summary: str | None, through_message_id: int, erasures_seen: int
    ) -> bool:
        """Store a live session's rebuilt seed summary, under the same condition as ``record_with_summary``."""
        ...

    async def latest_summary(self, *, thread_id: int) -> StoredSummary | None:
        """The most recent catch-up summary of the thread whose covered message still exists."""
        ...


class CardStore(Protocol):
    """ "Where were we?" cards; the first click wins in the database."""

    async def open_card(self, *, thread_id: int, now: datetime, fence: Fence | None = None) -> tuple[CardRecord, bool]:
        """The thread's open card, creating a pending one if there is none; True when created now (``fence``: as
        in :meth:`ThreadLog.record_reply`)."""
        ...

    async def open_card_for(self, *, thread_id: int) -> CardRecord | None: ...

    async def get(self, *, card_id: int) -> CardRecord | None: ...

    async def set_message_id(self, *, card_id: int, card_message_id: str) -> None: ...

    async def claim(self, *, card_id: int, state: str, by_id: str, by_name: str, now: datetime) -> bool:
        """Move a pending card to ``state`` for this user; False when someone else got there first."""
        ...

    async def finish(self, *, card_id: int, state: str, now: datetime, fence: Fence | None = None) -> None: ...

    async def discard(self, *, card_id: int) -> None:
        """Forget a card that could not be posted (its id is never given to another card)."""
        ...

    async def reopen(self, *, card_id: int) -> None:
        """Back to pending (the catch-up failed): the buttons work again."""
        ...

    async def reopen_interrupted(self) -> list[CardRecord]:
        """Cards left 'catching_up' by a process that died mid-summary become clickable again; returns them."""
        ...
