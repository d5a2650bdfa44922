"""ThreadLog: every message of every thread the bot takes part in, exactly once.

Logging is idempotent by construction: ``INSERT ... ON CONFLICT DO NOTHING`` against
``UNIQUE(thread_id, platform_message_id)``, so a platform that delivers a message twice leaves one row.
A user message carries a reply state: ``waiting`` until a reply that covered it was posted, then
``answered``. That state, not process memory, tells a restarted bot which messages still want an answer.

Deleting a message on the platform blanks its content here and hides it from transcripts, so it never
reaches a future summary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from storage.db import Database, Row


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class LoggedMessage:
    """One row of the log."""

    id: int
    thread_id: int
    platform_message_id: str
    author_id: str
    author_name: str
    role: str
    content: str
    attachments: list[dict[str, Any]]
    reply_state: str | None
    sent_utc: str
    edited: bool
    deleted: bool

    @classmethod
    def from_row(cls, row: Row) -> LoggedMessage:
        return cls(
            id=row["id"],
            thread_id=row["thread_id"],
            platform_message_id=row["platform_message_id"],
            author_id=row["author_id"],
            author_name=row["author_name"],
            role=row["role"],
            content=row["content"],
            attachments=json.loads(row["attachments_json"]),
            reply_state=row["reply_state"],
            sent_utc=row["sent_utc"],
            edited=row["edited_utc"] is not None,
            deleted=row["deleted_utc"] is not None,
        )


@dataclass(frozen=True, slots=True)
class ThreadRecord:
    id: int
    platform: str
    workspace: str
    channel: str
    thread: str
    title: str | None
    created_utc: str
    last_message_utc: str | None


_MESSAGE_COLUMNS = (
    "id, thread_id, platform_message_id, author_id, author_name, role, content, attachments_json, "
    "reply_state, sent_utc, edited_utc, deleted_utc"
)


class ThreadLog:
    """Threads and their messages."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def ensure_thread(
        self, *, platform: str, workspace: str, channel: str, thread: str, title: str | None, now: datetime
    ) -> int:
        """The thread's row id, creating the row on first sight."""
        async with self._db.transaction() as connection:
            await connection.execute(
                "INSERT INTO threads (platform, workspace, channel, thread, title, created_utc) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (platform, workspace, channel, thread, title, iso(now)),
            )
            cursor = await connection.execute(
                "SELECT id FROM threads WHERE platform = ? AND workspace = ? AND channel = ? AND thread = ?",
                (platform, workspace, channel, thread),
            )
            row = await cursor.fetchone()
            await cursor.close()
        assert row is not None
        return int(row["id"])

    async def find_thread(self, *, platform: str, workspace: str, channel: str, thread: str) -> int | None:
        row = await self._db.fetchone(
            "SELECT id FROM threads WHERE platform = ? AND workspace = ? AND channel = ? AND thread = ?",
            (platform, workspace, channel, thread),
        )
        return None if row is None else int(row["id"])

    async def find_threads(self, *, name: str) -> list[ThreadRecord]:
        """Threads whose id or title is ``name`` (the CLI's way of naming a thread)."""
        rows = await self._db.fetchall("SELECT * FROM threads WHERE thread = ? OR title = ? ORDER BY id", (name, name))
        return [ThreadRecord(**dict(row)) for row in rows]

    async def record_message(
        self,
        *,
        thread_id: int,
        platform_message_id: str,
        author_id: str,
        author_name: str,
        role: str,
        content: str,
        sent_utc: datetime,
        attachments: list[dict[str, Any]] | None = None,
        now: datetime,
    ) -> tuple[LoggedMessage, bool]:
        """Log a message once; return its row and whether this call created it."""
        reply_state = "waiting" if role == "user" else None
        async with self._db.transaction() as connection:
            cursor = await connection.execute(
                "INSERT INTO messages (thread_id, platform_message_id, author_id, author_name, role, content, "
                "attachments_json, reply_state, sent_utc, logged_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (
                    thread_id,
                    platform_message_id,
                    author_id,
                    author_name,
                    role,
                    content,
                    json.dumps(attachments or []),
                    reply_state,
                    iso(sent_utc),
                    iso(now),
                ),
            )
            created = cursor.rowcount > 0
            await cursor.close()
            if created:
                await connection.execute("UPDATE threads SET last_message_utc = ? WHERE id = ?", (iso(now), thread_id))
            cursor = await connection.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE thread_id = ? AND platform_message_id = ?",
                (thread_id, platform_message_id),
            )
            row = await cursor.fetchone()
            await cursor.close()
        assert row is not None
        return LoggedMessage.from_row(row), created

    async def has_messages_before(self, *, thread_id: int, message_id: int) -> bool:
        """True when the thread was logged before ``message_id`` arrived: the orphan test."""
        row = await self._db.fetchone(
            "SELECT 1 FROM messages WHERE thread_id = ? AND id < ? LIMIT 1", (thread_id, message_id)
        )
        return row is not None

    async def waiting(self, *, thread_id: int) -> list[LoggedMessage]:
        """User messages that no posted reply has covered yet, oldest first."""
        rows = await self._db.fetchall(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE thread_id = ? AND reply_state = 'waiting' ORDER BY id",
            (thread_id,),
        )
        return [LoggedMessage.from_row(row) for row in rows]

    async def mark_answered(self, *, message_ids: list[int]) -> None:
        if message_ids:
            marks = ",".join("?" * len(message_ids))
            await self._db.execute(f"UPDATE messages SET reply_state = 'answered' WHERE id IN ({marks})", message_ids)

    async def transcript(self, *, thread_id: int, after_id: int = 0) -> list[LoggedMessage]:
        """Visible (not deleted), already answered or assistant messages after ``after_id``, oldest first."""
        rows = await self._db.fetchall(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE thread_id = ? AND id > ? "
            "AND deleted_utc IS NULL AND (reply_state IS NULL OR reply_state = 'answered') ORDER BY id",
            (thread_id, after_id),
        )
        return [LoggedMessage.from_row(row) for row in rows]

    async def all_messages(self, *, thread_id: int) -> list[LoggedMessage]:
        rows = await self._db.fetchall(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE thread_id = ? ORDER BY id", (thread_id,)
        )
        return [LoggedMessage.from_row(row) for row in rows]

    async def edit_message(
        self, *, thread_id: int, platform_message_id: str, content: str, edited_utc: datetime
    ) -> bool:
        changed = await self._db.execute(
            "UPDATE messages SET content = ?, edited_utc = ? "
            "WHERE thread_id = ? AND platform_message_id = ? AND deleted_utc IS NULL",
            (content, iso(edited_utc), thread_id, platform_message_id),
        )
        return changed > 0

    async def delete_message(self, *, thread_id: int, platform_message_id: str, deleted_utc: datetime) -> bool:
        """Blank the content and attachments; the row stays so a redelivery cannot bring the text back."""
        changed = await self._db.execute(
            "UPDATE messages SET content = '', attachments_json = '[]', deleted_utc = ?, "
            "reply_state = CASE WHEN reply_state = 'waiting' THEN 'answered' ELSE reply_state END "
            "WHERE thread_id = ? AND platform_message_id = ? AND deleted_utc IS NULL",
            (iso(deleted_utc), thread_id, platform_message_id),
        )
        return changed > 0

    async def forget_thread(self, *, thread_id: int) -> None:
        """Purge a thread: its messages, sessions, cards and delivery records go with it."""
        await self._db.execute("DELETE FROM threads WHERE id = ?", (thread_id,))

    async def thread(self, *, thread_id: int) -> ThreadRecord | None:
        row = await self._db.fetchone("SELECT * FROM threads WHERE id = ?", (thread_id,))
        return None if row is None else ThreadRecord(**dict(row))
