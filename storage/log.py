"""ThreadLog: every message of every thread the bot takes part in, exactly once.

Logging is idempotent by construction: ``INSERT ... ON CONFLICT DO NOTHING`` against
``UNIQUE(thread_id, platform_message_id)``, so a platform that delivers a message twice leaves one row.
A user message carries a reply state: ``waiting`` until a reply that covered it was posted, then
``answered``. That state, not process memory, tells a restarted bot which messages still want an answer.

Deletions, edits and every other way of forgetting live in ``storage/erasure.py``: they must reach the
summaries and the journal in the same transaction.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from datetime import datetime
from functools import partial
from typing import Any

from storage.db import Database
from storage.group_commit import GroupCommit
from storage.leases import Fence
from storage.records import (
    MAX_BATCH,
    MESSAGE_COLUMNS,
    PROVISIONAL_ID_PREFIX,
    THREAD_COLUMNS,
    LoggedMessage,
    NewMessage,
    ThreadGone,
    ThreadRecord,
    iso,
    thread_from_row,
)


def _typed(exc: BaseException) -> BaseException:
    if isinstance(exc, sqlite3.IntegrityError) and "FOREIGN KEY" in str(exc):
        return ThreadGone(str(exc))
    return exc


def _write_messages(news: list[NewMessage], connection: sqlite3.Connection) -> list[tuple[LoggedMessage, bool]]:
    """Insert each message unless its (thread, platform id) is logged already; runs on the database thread."""
    results = []
    touched: dict[int, str] = {}
    for new in news:
        row = connection.execute(
            "INSERT INTO messages (thread_id, platform_message_id, author_id, author_name, role, content, "
            "attachments_json, reply_state, sent_utc, logged_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            f"ON CONFLICT DO NOTHING RETURNING {MESSAGE_COLUMNS}",
            (
                new.thread_id,
                new.platform_message_id,
                new.author_id,
                new.author_name,
                new.role,
                new.content,
                new.attachments_json,
                new.reply_state,
                new.sent_utc,
                new.logged_utc,
            ),
        ).fetchone()
        created = row is not None
        if created:
            touched[new.thread_id] = new.logged_utc
        else:
            row = connection.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = ? AND platform_message_id = ?",
                (new.thread_id, new.platform_message_id),
            ).fetchone()
        results.append((LoggedMessage.from_row(row), created))
    connection.executemany(
        "UPDATE threads SET last_message_utc = ? WHERE id = ?", [(when, tid) for tid, when in touched.items()]
    )
    return results


class ThreadLog:
    """Threads and their messages."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._writes: GroupCommit[NewMessage, tuple[LoggedMessage, bool]] = GroupCommit(
            lambda batch: self._db.run(partial(_write_messages, batch)), typed=_typed
        )

    async def ensure_thread(
        self,
        *,
        platform: str,
        workspace: str,
        channel: str,
        thread: str,
        title: str | None,
        now: datetime,
        title_message_id: str | None = None,
    ) -> int:
        """The thread's row id, creating the row on first sight."""
        async with self._db.transaction() as connection:
            await connection.execute(
                "INSERT INTO threads (platform, workspace, channel, thread, title, title_message_id, created_utc) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (platform, workspace, channel, thread, title, title_message_id if title else None, iso(now)),
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
        rows = await self._db.fetchall(
            f"SELECT {THREAD_COLUMNS} FROM threads WHERE thread = ? OR title = ? ORDER BY id", (name, name)
        )
        return [thread_from_row(row) for row in rows]

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
        """Log a message once; return its row and whether this call created it.

        Concurrent calls are group-committed: whoever arrives while a batch is being written joins the next
        batch, and each batch is one transaction in one hop to the database thread. The call returns only
        once its row is committed.
        """
        return await self._writes.submit(
            NewMessage.of(
                thread_id=thread_id,
                platform_message_id=platform_message_id,
                author_id=author_id,
                author_name=author_name,
                role=role,
                content=content,
                sent_utc=sent_utc,
                attachments=attachments,
                now=now,
            )
        )

    async def latest_platform_id(self, *, thread_id: int, role: str | None = None) -> str | None:
        """The id the platform gave the thread's most recently logged message, if any.

        Provisional ids are skipped: a reply whose post failed after its commit keeps one for good, and the
        platform cannot read its history "after" an id it never issued.
        """
        row = await self._db.fetchone(
            "SELECT platform_message_id FROM messages WHERE thread_id = ? AND platform_message_id NOT GLOB ? "
            "AND (? IS NULL OR role = ?) ORDER BY id DESC LIMIT 1",
            (thread_id, PROVISIONAL_ID_PREFIX + "*", role, role),
        )
        return None if row is None else str(row["platform_message_id"])

    async def has_messages_before(self, *, thread_id: int, message_id: int) -> bool:
        """True when the thread was logged before ``message_id`` arrived: the orphan test."""
        row = await self._db.fetchone(
            "SELECT 1 FROM messages WHERE thread_id = ? AND id < ? LIMIT 1", (thread_id, message_id)
        )
        return row is not None

    async def set_attachments(self, *, thread_id: int, message_id: int, attachments: list[dict[str, Any]]) -> None:
        """Replace a message's attachment metadata once its files were read (a deleted message stays blank)."""
        await self._db.execute(
            "UPDATE messages SET attachments_json = ? WHERE thread_id = ? AND id = ? AND deleted_utc IS NULL",
            (json.dumps(attachments), thread_id, message_id),
        )

    async def set_platform_id(self, *, thread_id: int, old: str, new: str, fence: Fence | None = None) -> None:
        """Give a reply logged before it was posted the id the platform gave it (``fence`` is ignored: SQLite's
        one worker owns every thread)."""
        await self._db.execute(
            "UPDATE messages SET platform_message_id = ? WHERE thread_id = ? AND platform_message_id = ?",
            (new, thread_id, old),
        )

    async def threads_with_waiting(self, *, platform: str) -> list[ThreadRecord]:
        """Threads of ``platform`` holding user messages that no posted reply has covered."""
        rows = await self._db.fetchall(
            f"SELECT {THREAD_COLUMNS} FROM threads WHERE platform = ? AND id IN "
            "(SELECT thread_id FROM messages WHERE reply_state = 'waiting') ORDER BY id",
            (platform,),
        )
        return [thread_from_row(row) for row in rows]

    async def waiting(self, *, thread_id: int) -> list[LoggedMessage]:
        """User messages that no posted reply has covered yet, oldest first."""
        rows = await self._db.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = ? AND reply_state = 'waiting' ORDER BY id",
            (thread_id,),
        )
        return [LoggedMessage.from_row(row) for row in rows]

    async def record_reply(
        self,
        *,
        thread_id: int,
        platform_message_id: str,
        author_name: str,
        content: str,
        answered_ids: list[int],
        now: datetime,
        fence: Fence | None = None,
    ) -> int | None:
        """Log a posted reply and mark what it answered, in one transaction; return the reply's log id.

        ``fence`` is ignored: SQLite has one worker, which owns every thread (``storage/leases.py``).

        A crash can then never leave a posted reply logged while the messages it answered still look waiting
        (which would answer them twice after a restart); the platform deliveries behind them are marked
        handled in the same commit.
        """
        marks = ",".join("?" * len(answered_ids))

        def write(connection: sqlite3.Connection) -> int | None:
            row = connection.execute(
                "INSERT INTO messages (thread_id, platform_message_id, author_id, author_name, role, content, "
                "sent_utc, logged_utc) VALUES (?, ?, 'assistant', ?, 'assistant', ?, ?, ?) ON CONFLICT DO NOTHING "
                "RETURNING id",
                (thread_id, platform_message_id, author_name, content, iso(now), iso(now)),
            ).fetchone()
            if answered_ids:
                connection.execute(f"UPDATE messages SET reply_state = 'answered' WHERE id IN ({marks})", answered_ids)
                connection.execute(
                    f"UPDATE delivered_events SET handled_utc = ? WHERE message_id IN ({marks}) "
                    "AND handled_utc IS NULL",
                    [iso(now), *answered_ids],
                )
            connection.execute("UPDATE threads SET last_message_utc = ? WHERE id = ?", (iso(now), thread_id))
            return None if row is None else int(row[0])

        return await self._db.run(write)

    async def replace_reply(
        self, *, thread_id: int, reply_id: int, answered_ids: list[int], now: datetime, fence: Fence | None = None
    ) -> bool:
        """Mark the answer ``reply_id`` replaced and what it answered waiting again, in one transaction (retry).

        A crash before the new answer is posted then leaves the questions waiting, so the next start answers
        them; False when the answer is gone or was replaced already. ``fence`` is ignored, as in record_reply.
        """
        marks = ",".join("?" * len(answered_ids))

        def write(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute(
                "UPDATE messages SET replaced_utc = ? WHERE id = ? AND thread_id = ? AND role = 'assistant' "
                "AND replaced_utc IS NULL AND deleted_utc IS NULL",
                (iso(now), reply_id, thread_id),
            )
            if cursor.rowcount != 1:
                return False
            if answered_ids:
                connection.execute(
                    f"UPDATE messages SET reply_state = 'waiting' WHERE thread_id = ? AND reply_state = 'answered' "
                    f"AND id IN ({marks})",
                    (thread_id, *answered_ids),
                )
            return True

        return await self._db.run(write)

    async def transcript(
        self, *, thread_id: int, after_id: int = 0, through_id: int | None = None
    ) -> list[LoggedMessage]:
        """Visible (not deleted), already answered or assistant messages in (``after_id``, ``through_id``].

        Rows become objects on the database thread: a 10,000-message thread costs the event loop nothing.
        """
        through = sys.maxsize if through_id is None else through_id

        def read(connection: sqlite3.Connection) -> list[LoggedMessage]:
            rows = connection.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = ? AND id > ? AND id <= ? "
                "AND deleted_utc IS NULL AND replaced_utc IS NULL "
                "AND (reply_state IS NULL OR reply_state = 'answered') ORDER BY id",
                (thread_id, after_id, through),
            )
            return [LoggedMessage.from_row(row) for row in rows]

        return await self._db.run(read)

    async def visible(self, *, thread_id: int, ids: list[int]) -> list[LoggedMessage]:
        """The messages among ``ids`` that are still there (not deleted), with their current text, oldest first."""

        def read(connection: sqlite3.Connection) -> list[LoggedMessage]:
            found: list[LoggedMessage] = []
            for start in range(0, len(ids), MAX_BATCH):
                part = ids[start : start + MAX_BATCH]
                rows = connection.execute(
                    f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = ? AND deleted_utc IS NULL "
                    f"AND id IN ({','.join('?' * len(part))})",
                    (thread_id, *part),
                )
                found.extend(LoggedMessage.from_row(row) for row in rows)
            return sorted(found, key=lambda m: m.id)

        return await self._db.run(read)

    async def all_messages(self, *, thread_id: int) -> list[LoggedMessage]:
        rows = await self._db.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = ? ORDER BY id", (thread_id,)
        )
        return [LoggedMessage.from_row(row) for row in rows]

    async def thread(self, *, thread_id: int) -> ThreadRecord | None:
        row = await self._db.fetchone(f"SELECT {THREAD_COLUMNS} FROM threads WHERE id = ?", (thread_id,))
        return None if row is None else thread_from_row(row)
