"""ThreadLog: every message of every thread the bot takes part in, exactly once.

Logging is idempotent by construction: ``INSERT ... ON CONFLICT DO NOTHING`` against
``UNIQUE(thread_id, platform_message_id)``, so a platform that delivers a message twice leaves one row.
A user message carries a reply state: ``waiting`` until a reply that covered it was posted, then
``answered``. That state, not process memory, tells a restarted bot which messages still want an answer.

Deletions, edits and every other way of forgetting live in ``storage/erasure.py``: they must reach the
summaries and the journal in the same transaction.

One class for both backends (``storage/sql.py``); only the group-commit batch is each backend's own
(``storage/sqlite/log_batch.py``, ``storage/postgres/log_batch.py``). On Postgres several workers share the log:
a reply is written only while its worker still holds the thread's lease (``fence``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from storage.group_commit import GroupCommit
from storage.leases import Fence
from storage.records import (
    MESSAGE_COLUMNS,
    PROVISIONAL_ID_PREFIX,
    THREAD_COLUMNS,
    LoggedMessage,
    NewMessage,
    ThreadRecord,
    iso,
    record_from_row,
)
from storage.sql import SqlDatabase

_THREAD_COLUMNS_OF_T = ", ".join(f"t.{column}" for column in THREAD_COLUMNS.split(", "))


class ThreadLog:
    """Threads and their messages."""

    def __init__(self, db: SqlDatabase) -> None:
        self._db = db
        self._writes: GroupCommit[NewMessage, tuple[LoggedMessage, bool]] = GroupCommit(
            db.write_messages, typed=db.typed_error
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
        async with self._db.atomic() as tx:
            await tx.execute(
                "INSERT INTO threads (platform, workspace, channel, thread, title, title_message_id, created_utc) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (platform, workspace, channel, thread, title, title_message_id if title else None, iso(now)),
            )
            row = await tx.fetchone(
                "SELECT id FROM threads WHERE platform = ? AND workspace = ? AND channel = ? AND thread = ?",
                (platform, workspace, channel, thread),
            )
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
        return [record_from_row(ThreadRecord, row) for row in rows]

    async def threads_holding(
        self, *, platform: str, workspace: str, channel: str, platform_message_id: str
    ) -> list[ThreadRecord]:
        """The threads of a channel that logged the platform's message ``platform_message_id``, oldest first.

        Usually one; a Discord channel message is also logged in each thread that a reply continuing it started
        (its reply chain, ``bots/router/joining.py``), and a deletion or edit names only the channel.
        """
        # CROSS JOIN keeps SQLite's loop order: the message by m016's index first (most deleted messages were never
        # logged: no row), then each thread by its key, however many threads the channel has; Postgres plans it
        # from its statistics. The unique (thread, platform id) makes each thread one row.
        rows = await self._db.fetchall(
            f"SELECT {_THREAD_COLUMNS_OF_T} FROM messages m CROSS JOIN threads t WHERE m.platform_message_id = ? "
            "AND t.id = m.thread_id AND t.platform = ? AND t.workspace = ? AND t.channel = ? ORDER BY t.id",
            (platform_message_id, platform, workspace, channel),
        )
        return [record_from_row(ThreadRecord, row) for row in rows]

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
        read: bool = False,
    ) -> tuple[LoggedMessage, bool]:
        """Log a message once; return its row and whether this call created it.

        ``read``: a user message logged as answered at once (history read on joining, a message the reply mode
        leaves unanswered): no answer of its own is owed, a restart posts no card for it, and it is context for
        the next answer like any answered message.

        Concurrent calls are group-committed: whoever arrives while a batch is being written joins the next
        batch, and each batch is one transaction (``SqlDatabase.write_messages``). The call returns only once
        its row is committed.
        """
        reply_state = None if role != "user" else "answered" if read else "waiting"
        attachments_json = json.dumps(attachments or [])
        return await self._writes.submit(
            NewMessage(thread_id, platform_message_id, author_id, author_name, role, content, attachments_json,
                       reply_state, iso(sent_utc), iso(now))
        )  # fmt: skip

    async def latest_platform_id(self, *, thread_id: int, role: str | None = None) -> str | None:
        """The id the platform gave the thread's most recently logged message, if any.

        Provisional ids are skipped: a reply whose post failed after its commit keeps one for good, and the
        platform cannot read its history "after" an id it never issued.
        """
        row = await self._db.fetchone(
            "SELECT platform_message_id FROM messages WHERE thread_id = ? "
            "AND substr(platform_message_id, 1, ?) <> ? AND (CAST(? AS TEXT) IS NULL OR role = ?) "
            "ORDER BY id DESC LIMIT 1",
            (thread_id, len(PROVISIONAL_ID_PREFIX), PROVISIONAL_ID_PREFIX, role, role),
        )
        return None if row is None else str(row["platform_message_id"])

    async def speakers(self, *, thread_id: int, limit: int) -> list[str]:
        """Up to ``limit`` distinct authors of the thread's user messages."""
        rows = await self._db.fetchall(
            "SELECT DISTINCT author_id FROM messages WHERE thread_id = ? AND role = 'user' LIMIT ?", (thread_id, limit)
        )
        return [str(row["author_id"]) for row in rows]

    async def has_messages_before(self, *, thread_id: int, message_id: int) -> bool:
        """True when the thread was logged before ``message_id`` arrived: the orphan test."""
        row = await self._db.fetchone(
            "SELECT 1 AS found FROM messages WHERE thread_id = ? AND id < ? LIMIT 1", (thread_id, message_id)
        )
        return row is not None

    async def set_attachments(
        self, *, thread_id: int, message_id: int, attachments: list[dict[str, Any]], transcript: str | None = None
    ) -> None:
        """Replace a message's attachment metadata once its files were read, with the transcript of its audio
        when it had some (a deleted message stays blank)."""
        await self._db.execute(
            "UPDATE messages SET attachments_json = ?, transcript = COALESCE(?, transcript) "
            "WHERE thread_id = ? AND id = ? AND deleted_utc IS NULL",
            (json.dumps(attachments), transcript, thread_id, message_id),
        )

    async def set_platform_id(self, *, thread_id: int, old: str, new: str, fence: Fence | None = None) -> None:
        """Give a reply logged before it was posted the id the platform gave it (a worker that lost the thread,
        ``fence``, writes nothing more there)."""
        await self._db.script(
            [
                (
                    "UPDATE messages SET platform_message_id = ? WHERE thread_id = ? AND platform_message_id = ?",
                    (new, thread_id, old),
                )
            ],
            fence=fence,
        )

    async def threads_with_waiting(self, *, platform: str) -> list[ThreadRecord]:
        """Threads of ``platform`` holding user messages that no posted reply has covered."""
        rows = await self._db.fetchall(
            f"SELECT {THREAD_COLUMNS} FROM threads WHERE platform = ? AND id IN "
            "(SELECT thread_id FROM messages WHERE reply_state = 'waiting') ORDER BY id",
            (platform,),
        )
        return [record_from_row(ThreadRecord, row) for row in rows]

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

        A crash can then never leave a posted reply logged while the messages it answered still look waiting
        (which would answer them twice after a restart); the platform deliveries behind them are marked
        handled in the same commit. With several workers only the thread's owner (``fence``) may write it.
        """
        ids = self._db.dialect.array(answered_ids)
        row, *_ = await self._db.script(
            [
                (
                    "INSERT INTO messages (thread_id, platform_message_id, author_id, author_name, role, content, "
                    "sent_utc, logged_utc) VALUES (?, ?, 'assistant', ?, 'assistant', ?, ?, ?) "
                    "ON CONFLICT DO NOTHING RETURNING id",
                    (thread_id, platform_message_id, author_name, content, iso(now), iso(now)),
                ),
                ("UPDATE messages SET reply_state = 'answered' WHERE id {in_ids}", (ids,)),
                (
                    "UPDATE delivered_events SET handled_utc = ? WHERE message_id {in_ids} AND handled_utc IS NULL",
                    (iso(now), ids),
                ),
                ("UPDATE threads SET last_message_utc = ? WHERE id = ?", (iso(now), thread_id)),
            ],
            fence=fence,
        )
        return None if row is None else int(row["id"])

    async def replace_reply(
        self, *, thread_id: int, reply_id: int, answered_ids: list[int], now: datetime, fence: Fence | None = None
    ) -> bool:
        """Mark the answer ``reply_id`` replaced and what it answered waiting again, in one transaction (retry).

        A crash before the new answer is posted then leaves the questions waiting, so the next start answers
        them; False when the answer is gone or was replaced already. Only the thread's owner (``fence``) may
        take its answer back.
        """
        async with self._db.atomic() as tx:
            await tx.check_fence(fence)
            changed = await tx.execute(
                "UPDATE messages SET replaced_utc = ? WHERE id = ? AND thread_id = ? AND role = 'assistant' "
                "AND replaced_utc IS NULL AND deleted_utc IS NULL",
                (iso(now), reply_id, thread_id),
            )
            if changed != 1:
                return False
            if answered_ids:
                await tx.execute(
                    "UPDATE messages SET reply_state = 'waiting' WHERE thread_id = ? AND reply_state = 'answered' "
                    "AND id {in_ids}",
                    (thread_id, self._db.dialect.array(answered_ids)),
                )
        return True

    async def transcript(
        self, *, thread_id: int, after_id: int = 0, through_id: int | None = None
    ) -> list[LoggedMessage]:
        """Visible (not deleted), already answered or assistant messages in (``after_id``, ``through_id``]."""
        rows = await self._db.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = ? AND id > ? "
            "AND (CAST(? AS BIGINT) IS NULL OR id <= ?) AND deleted_utc IS NULL AND replaced_utc IS NULL "
            "AND (reply_state IS NULL OR reply_state = 'answered') ORDER BY id",
            (thread_id, after_id, through_id, through_id),
        )
        return [LoggedMessage.from_row(row) for row in rows]

    async def visible(self, *, thread_id: int, ids: list[int]) -> list[LoggedMessage]:
        """The messages among ``ids`` that are still there (not deleted), with their current text, oldest first."""
        rows = await self._db.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = ? AND deleted_utc IS NULL AND id {{in_ids}} "
            "ORDER BY id",
            (thread_id, self._db.dialect.array(ids)),
        )
        return [LoggedMessage.from_row(row) for row in rows]

    async def all_messages(self, *, thread_id: int) -> list[LoggedMessage]:
        rows = await self._db.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = ? ORDER BY id", (thread_id,)
        )
        return [LoggedMessage.from_row(row) for row in rows]

    async def thread(self, *, thread_id: int) -> ThreadRecord | None:
        row = await self._db.fetchone(f"SELECT {THREAD_COLUMNS} FROM threads WHERE id = ?", (thread_id,))
        return None if row is None else record_from_row(ThreadRecord, row)
