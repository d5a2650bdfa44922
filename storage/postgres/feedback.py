"""👍 / 👎 on answers, on Postgres (the contract of storage/feedback.py): the same upsert on the same key."""

from __future__ import annotations

from datetime import datetime

from storage.postgres.db import PostgresDatabase
from storage.records import FeedbackEntry, Rating, feedback_from_row, iso


class PostgresFeedbackStore:
    def __init__(self, db: PostgresDatabase) -> None:
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
        changed = await self._db.execute(
            "INSERT INTO feedback (message_id, user_id, user_name, rating, given_utc) "
            "SELECT m.id, %s, %s, %s, %s FROM messages m JOIN threads t ON t.id = m.thread_id "
            "WHERE t.platform = %s AND t.workspace = %s AND t.channel = %s AND t.thread = %s "
            "AND m.platform_message_id = %s AND m.role = 'assistant' AND m.deleted_utc IS NULL "
            "ON CONFLICT (message_id, user_id) DO UPDATE SET "
            "user_name = excluded.user_name, rating = excluded.rating, given_utc = excluded.given_utc",
            (user_id, user_name, rating, iso(now), platform, workspace, channel, thread, answer_id),
        )
        return changed > 0

    async def for_thread(self, *, thread_id: int) -> list[FeedbackEntry]:
        rows = await self._db.fetchall(
            "SELECT f.message_id, m.platform_message_id, f.user_id, f.user_name, f.rating, f.given_utc "
            "FROM feedback f JOIN messages m ON m.id = f.message_id WHERE m.thread_id = %s "
            "ORDER BY f.message_id, f.given_utc, f.id",
            (thread_id,),
        )
        return [feedback_from_row(row) for row in rows]
