"""The contracts a tool turn writes and reads: thread search, the tool trail, the turn journal, approvals.

Together because one tool turn (``bots/tools/``) uses all four: it searches the thread, records each call as it
happens and once it ended, and waits on approval cards. Search is each backend's own (``storage/sqlite/``,
``storage/postgres/``); the others are ``storage/trail.py`` and ``storage/journal.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from storage.records import ApprovalRecord, CallEnd, JournalStep, SearchHit, TrailEntry


class ThreadSearch(Protocol):
    async def search(self, *, thread_id: int, query: str, limit: int) -> list[SearchHit]:
        """The ``limit`` messages of the thread that match ``query`` best, best first; never another thread's."""
        ...


class ToolTrail(Protocol):
    async def record(
        self,
        *,
        thread_id: int,
        after_message_id: int,
        call_id: str,
        tool: str,
        arguments: dict[str, object],
        result_excerpt: str,
        is_error: bool,
        duration_ms: int,
        approval: str,
        decided_by: str | None,
        cites: tuple[int, ...],
        now: datetime,
    ) -> None: ...

    async def for_thread(self, *, thread_id: int, after_id: int = 0, through_id: int | None = None) -> list[TrailEntry]:
        """Trail entries placed after a message in (``after_id``, ``through_id``], in order."""
        ...


class TurnJournal(Protocol):
    """A tool turn's steps and each call's state, as they happen (storage/journal.py says why)."""

    async def open_step(
        self,
        *,
        thread_id: int,
        after_message_id: int,
        text: str,
        calls: Sequence[tuple[str, str, str]],
        now: datetime,
        running: str | None = None,
        ended: CallEnd | None = None,
    ) -> int:
        """Record a step and its ``(call_id, tool, arguments_json)`` calls as requested (the one ``running``
        names as running, the one ``ended`` names as ended), in one transaction; returns the step's id."""
        ...

    async def set_state(self, *, step_id: int, call_id: str, state: str) -> None:
        """Move a call to ``allowed`` or ``running``, committed when this returns."""
        ...

    async def set_waiting(self, *, step_id: int, call_id: str, approval_id: int) -> None:
        """The call waits on approval ``approval_id`` (the card outlives the process)."""
        ...

    async def finish(
        self,
        *,
        step_id: int,
        call_id: str,
        state: str,
        result: str,
        is_error: bool,
        duration_ms: int,
        approval: str,
        decided_by: str | None,
        cites: tuple[int, ...],
    ) -> None:
        """End a call (``done``, ``failed``, ``denied``, ``expired``) with its result as the model saw it."""
        ...

    async def open_turn(self, *, thread_id: int) -> list[JournalStep]:
        """The steps of the thread's open turn, oldest first, each with its calls in order; empty when none."""
        ...

    async def close_turn(self, *, thread_id: int, now: datetime) -> int:
        """The open turn ended (answered or dropped); its rows stay in the log. Returns the steps closed."""
        ...


class ApprovalStore(Protocol):
    async def open(self, *, thread_id: int, tool: str, arguments_preview: str, now: datetime) -> int: ...

    async def set_message_id(self, *, approval_id: int, card_message_id: str) -> None: ...

    async def decide(
        self,
        *,
        approval_id: int,
        state: str,
        by_id: str | None,
        by_name: str | None,
        now: datetime,
        within_s: float | None = None,
    ) -> bool:
        """Move a pending approval to ``state``; False when it was decided (or expired) already.

        ``within_s``: only if it was asked for less than that many seconds ago by the database's clock (the
        timeout, decided in the same statement; ``ApprovalRecord.age_s`` is the same clock's reading)."""
        ...

    async def get(self, *, approval_id: int) -> ApprovalRecord | None: ...

    async def expire_pending(self, *, now: datetime) -> int:
        """An earlier run's waiting calls died with it: their cards are stale. Returns how many."""
        ...
