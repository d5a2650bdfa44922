"""👍 / 👎 on the bot's answers: which answer, who, which way, when.

One row per answer and person: a second click by the same person replaces the first (the unique constraint
does it, with an upsert). An answer is named the way the platform names it (its thread and the platform id
of its first message); feedback on something that is not a logged answer is not recorded. The rows go with
their message (``ON DELETE CASCADE``), so forgetting a thread forgets its feedback.

The contract: ``storage.protocols.FeedbackStore``, one class for both backends (``storage/sql.py``).
"""

from __future__ import annotations

from datetime import datetime

from storage.records import FeedbackEntry, Rating, iso, record_from_row
from storage.sql import SqlDatabase


class FeedbackStore:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

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
        changed = await self._db.execute(
            "INSERT INTO feedback (message_id, user_id, user_name, rating, given_utc) "
            "SELECT m.id, ?, ?, ?, ? FROM messages m JOIN threads t ON t.id = m.thread_id "
            "WHERE t.platform = ? AND t.workspace = ? AND t.channel = ? AND t.thread = ? "
            "AND m.platform_message_id = ? AND m.role = 'assistant' AND m.deleted_utc IS NULL "
            "ON CONFLICT (message_id, user_id) DO UPDATE SET "
            "user_name = excluded.user_name, rating = excluded.rating, given_utc = excluded.given_utc",
            (user_id, user_name, rating, iso(now), platform, workspace, channel, thread, answer_id),
        )
        return changed > 0

    async def for_thread(self, *, thread_id: int) -> list[FeedbackEntry]:
        """The thread's feedback, in the order of its answers, then of when it was given."""
        rows = await self._db.fetchall(
            "SELECT f.message_id, m.platform_message_id, f.user_id, f.user_name, f.rating, f.given_utc "
            "FROM feedback f JOIN messages m ON m.id = f.message_id WHERE m.thread_id = ? "
            "ORDER BY f.message_id, f.given_utc, f.id",
            (thread_id,),
        )
        return [record_from_row(FeedbackEntry, row) for row in rows]
