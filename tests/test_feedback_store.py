"""The feedback store on a real SQLite file: the contract a second backend must keep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from storage.db import open_database
from storage.feedback import FeedbackEntry, FeedbackStore
from storage.migrations import migrate

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
WHERE = {"platform": "slack", "workspace": "T1", "channel": "C1", "thread": "100.1"}


async def test_feedback_is_recorded_on_answers_only_replaced_per_person_and_goes_with_its_message(
    tmp_path: Path,
) -> None:
    db = await open_database(tmp_path / "bot.db")
    try:
        await migrate(db)
        await db.execute(
            "INSERT INTO threads (id, platform, workspace, channel, thread, created_utc) VALUES (1, ?, ?, ?, ?, ?)",
            (*WHERE.values(), NOW.isoformat()),
        )
        for row_id, platform_id, role in ((1, "100.1", "user"), (2, "100.2", "assistant")):
            await db.execute(
                "INSERT INTO messages (id, thread_id, platform_message_id, author_id, author_name, role, content, "
                "sent_utc, logged_utc) VALUES (?, 1, ?, 'U', 'U', ?, 'text', ?, ?)",
                (row_id, platform_id, role, NOW.isoformat(), NOW.isoformat()),
            )
        store = FeedbackStore(db)

        async def give(answer: str, user: str, rating: str, at: datetime) -> bool:
            return await store.record(
                **WHERE,
                answer_id=answer,
                user_id=user,
                user_name=user.title(),
                rating=rating,
                now=at,  # type: ignore[arg-type]
            )

        assert await give("100.1", "ualice", "positive", NOW) is False  # a user's message is no answer
        assert await give("999.9", "ualice", "positive", NOW) is False  # nor is a message nobody logged
        assert await give("100.2", "ualice", "positive", NOW) is True
        assert await give("100.2", "ubob", "positive", NOW + timedelta(seconds=1)) is True
        assert await give("100.2", "ualice", "negative", NOW + timedelta(seconds=2)) is True  # replaces hers
        assert await store.for_thread(thread_id=1) == [
            FeedbackEntry(2, "100.2", "ubob", "Ubob", "positive", (NOW + timedelta(seconds=1)).isoformat()),
            FeedbackEntry(2, "100.2", "ualice", "Ualice", "negative", (NOW + timedelta(seconds=2)).isoformat()),
        ]
        await db.execute("DELETE FROM messages WHERE id = 2")
        assert await store.for_thread(thread_id=1) == []
    finally:
        await db.close()
