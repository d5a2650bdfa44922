"""The contracts of what people do around the answers: token usage, feedback on answers, a thread's settings.

Small stores that the daily cap, the operator's usage report, the feedback buttons and the thread's commands
use; apart from the log because none of them holds the conversation itself. The classes are
``storage/usage.py``, ``storage/feedback.py`` and ``storage/thread_settings.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from storage.records import FeedbackEntry, Grouping, Rating, UsageRow, UsageTotal


class UsageLog(Protocol):
    async def record(self, rows: list[UsageRow]) -> None:
        """Write a turn's calls in one transaction."""
        ...

    async def tokens_since(self, *, user_id: str, since: datetime) -> int:
        """Tokens in and out of the calls made for ``user_id`` since ``since``."""
        ...

    async def totals(self, *, by: Grouping, since: datetime | None = None) -> list[UsageTotal]:
        """Usage grouped by thread, user or UTC day, since ``since`` (all of it when None)."""
        ...


class FeedbackStore(Protocol):
    """👍 / 👎 on answers: one row per answer and person, a second click replacing the first."""

    async def record(
        self,
        *,
        platform: str,
        workspace: str,
        channel: str,
        thread: str,
        answer_id: str,
        user_id: str,
        user_name: str,
        rating: Rating,
        now: datetime,
    ) -> bool:
        """Record (or replace) ``user_id``'s feedback on the answer; False when no logged answer has that id."""
        ...

    async def for_thread(self, *, thread_id: int) -> list[FeedbackEntry]:
        """The thread's feedback, in the order of its answers, then of when it was given."""
        ...


class ThreadSettings(Protocol):
    """What people chose for one thread from inside it (its model, its reply mode); gone with the thread."""

    async def model(self, *, thread_id: int) -> str | None: ...

    async def set_model(self, *, thread_id: int, model: str, changed_by_id: str, now: datetime) -> None: ...

    async def reply_mode(self, *, thread_id: int) -> str | None: ...

    async def set_reply_mode(self, *, thread_id: int, mode: str, changed_by_id: str, now: datetime) -> None: ...
