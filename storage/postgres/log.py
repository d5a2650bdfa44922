"""ThreadLog on Postgres: the same contract as ``storage/log.py``, for several workers on one database.

Idempotence lives in the same unique constraint (``ON CONFLICT DO NOTHING``); under READ COMMITTED a second
worker inserting the same message waits for the first to commit, then reads its row. Concurrent calls are
group-committed (``storage/group_commit.py``), one transaction per batch, and a batch is three statements
whatever its size (arrays through ``unnest``): a round trip per row would halve the rate. Within a batch rows
are written in (thread, platform id) order, so two workers' batches take their locks in the same order and
cannot deadlock on each other; should one ever fail anyway, the batch is retried row by row.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from psycopg import errors

from storage.group_commit import GroupCommit
from storage.leases import Fence
from storage.postgres.db import Connection, PostgresDatabase
from storage.postgres.leases import check_fence
from storage.records import (
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
    if isinstance(exc, errors.ForeignKeyViolation):
        return ThreadGone(str(exc))
    return exc


_INSERT_BATCH = (
    "INSERT INTO messages (thread_id, platform_message_id, author_id, author_name, role, content, attachments_json, "
    "reply_state, sent_utc, logged_utc) SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], "
    "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[]) "
    f"ON CONFLICT DO NOTHING RETURNING {MESSAGE_COLUMNS}"
)
_SELECT_LOGGED = (
    f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE (thread_id, platform_message_id) IN "
    "(SELECT * FROM unnest(%s::bigint[], %s::text[]))"
)
_TOUCH_THREADS = (
    "UPDATE threads SET last_message_utc = touched.at FROM unnest(%s::bigint[], %s::text[]) AS touched (id, at) "
    "WHERE threads.id = touched.id"
)
_FIELDS = (
    "thread_id", "platform_message_id", "author_id", "author_name", "role", "content", "attachments_json",
    "reply_state", "sent_utc", "logged_utc",
)  # fmt: skip


async def _write_batch(connection: Connection, news: list[NewMessage]) -> list[tuple[LoggedMessage, bool]]:
    """The whole batch in three statements: insert what is new, read what was logged before, touch threads.

    Rows go in (thread, platform id) order so two workers' batches lock in the same order. A message twice in
    one batch is created by its first occurrence; the later ones get the same row with ``created`` False.
    """
    ordered = sorted(news, key=lambda n: (n.thread_id, n.platform_message_id))
    columns = [[getattr(new, field) for new in ordered] for field in _FIELDS]
    cursor = await connection.execute(_INSERT_BATCH, columns)
    logged = {(int(row["thread_id"]), row["platform_message_id"]): row for row in await cursor.fetchall()}
    created_now = set(logged)
    missing = list(
        dict.fromkeys(
            (n.thread_id, n.platform_message_id) for n in news if (n.thread_id, n.platform_message_id) not in logged
        )
    )
    if missing:
        cursor = await connection.execute(_SELECT_LOGGED, ([t for t, _ in missing], [p for _, p in missing]))
        logged |= {(int(row["thread_id"]), row["platform_message_id"]): row for row in await cursor.fetchall()}
    touched: dict[int, str] = {}
    for new in ordered:
        if (new.thread_id, new.platform_message_id) in created_now:
            touched[new.thread_id] = max(touched.get(new.thread_id, ""), new.logged_utc)
    if touched:
        await connection.execute(_TOUCH_THREADS, (list(touched), list(touched.values())))
    results = []
    for new in news:
        key = (new.thread_id, new.platform_message_id)
        results.append((LoggedMessage.from_row(logged[key]), key in created_now))
        created_now.discard(key)  # a second occurrence in the batch did not create it
    return results


class PostgresThreadLog:
    """Threads and their messages."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db
        self._writes: GroupCommit[NewMessage, tuple[LoggedMessage, bool]] = GroupCommit(self._write, typed=_typed)

    async def _write(self, news: list[NewMessage]) -> list[tuple[LoggedMessage, bool]]:
        async with self._db.transaction() as connection:
            return await _write_batch(connection, news)

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
                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (platform, workspace, channel, thread, title, title_message_id if title else None, iso(now)),
            )
            cursor = await connection.execute(
                "SELECT id FROM threads WHERE platform = %s AND workspace = %s AND channel = %s AND thread = %s",
                (platform, workspace, channel, thread),
            )
            row = await cursor.fetchone()
        assert row is not None
        return int(row["id"])

    async def find_thread(self, *, platform: str, workspace: str, channel: str, thread: str) -> int | None:
        row = await self._db.fetchone(
            "SELECT id FROM threads WHERE platform = %s AND workspace = %s AND channel = %s AND thread = %s",
            (platform, workspace, channel, thread),
        )
        return None if row is None else int(row["id"])

    async def find_threads(self, *, name: str) -> list[ThreadRecord]:
        rows = await self._db.fetchall(
            f"SELECT {THREAD_COLUMNS} FROM threads WHERE thread = %s OR title = %s ORDER BY id", (name, name)
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
        row = await self._db.fetchone(
            "SELECT platform_message_id FROM messages WHERE thread_id = %s "
            "AND NOT starts_with(platform_message_id, %s) AND (%s::text IS NULL OR role = %s) ORDER BY id DESC LIMIT 1",
            (thread_id, PROVISIONAL_ID_PREFIX, role, role),
        )
        return None if row is None else str(row["platform_message_id"])

    async def has_messages_before(self, *, thread_id: int, message_id: int) -> bool:
        row = await self._db.fetchone(
            "SELECT 1 AS found FROM messages WHERE thread_id = %s AND id < %s LIMIT 1", (thread_id, message_id)
        )
        return row is not None

    async def set_attachments(self, *, thread_id: int, message_id: int, attachments: list[dict[str, Any]]) -> None:
        await self._db.execute(
            "UPDATE messages SET attachments_json = %s WHERE thread_id = %s AND id = %s AND deleted_utc IS NULL",
            (json.dumps(attachments), thread_id, message_id),
        )

    async def set_platform_id(self, *, thread_id: int, old: str, new: str, fence: Fence | None = None) -> None:
        async with self._db.transaction() as connection:
            await check_fence(connection, fence)  # a worker that lost the thread writes nothing more there
            await connection.execute(
                "UPDATE messages SET platform_message_id = %s WHERE thread_id = %s AND platform_message_id = %s",
                (new, thread_id, old),
            )

    async def threads_with_waiting(self, *, platform: str) -> list[ThreadRecord]:
        rows = await self._db.fetchall(
            f"SELECT {THREAD_COLUMNS} FROM threads WHERE platform = %s AND id IN "
            "(SELECT thread_id FROM messages WHERE reply_state = 'waiting') ORDER BY id",
            (platform,),
        )
        return [thread_from_row(row) for row in rows]

    async def waiting(self, *, thread_id: int) -> list[LoggedMessage]:
        rows = await self._db.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = %s AND reply_state = 'waiting' ORDER BY id",
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
        """Log a posted reply and mark what it answered, and their deliveries handled, in one transaction."""
        async with self._db.transaction() as connection:
            await check_fence(connection, fence)  # several workers: only the thread's owner may write its reply
            cursor = await connection.execute(
                "INSERT INTO messages (thread_id, platform_message_id, author_id, author_name, role, content, "
                "sent_utc, logged_utc) VALUES (%s, %s, 'assistant', %s, 'assistant', %s, %s, %s) "
                "ON CONFLICT DO NOTHING RETURNING id",
                (thread_id, platform_message_id, author_name, content, iso(now), iso(now)),
            )
            row = await cursor.fetchone()
            if answered_ids:
                await connection.execute(
                    "UPDATE messages SET reply_state = 'answered' WHERE id = ANY(%s)", (answered_ids,)
                )
                await connection.execute(
                    "UPDATE delivered_events SET handled_utc = %s WHERE message_id = ANY(%s) AND handled_utc IS NULL",
                    (iso(now), answered_ids),
                )
            await connection.execute("UPDATE threads SET last_message_utc = %s WHERE id = %s", (iso(now), thread_id))
        return None if row is None else int(row["id"])

    async def replace_reply(
        self, *, thread_id: int, reply_id: int, answered_ids: list[int], now: datetime, fence: Fence | None = None
    ) -> bool:
        """Mark the answer replaced and what it answered waiting again, in one transaction (a retry)."""
        async with self._db.transaction() as connection:
            await check_fence(connection, fence)  # only the thread's owner may take its answer back
            cursor = await connection.execute(
                "UPDATE messages SET replaced_utc = %s WHERE id = %s AND thread_id = %s AND role = 'assistant' "
                "AND replaced_utc IS NULL AND deleted_utc IS NULL",
                (iso(now), reply_id, thread_id),
            )
            if cursor.rowcount != 1:
                return False
            if answered_ids:
                await connection.execute(
                    "UPDATE messages SET reply_state = 'waiting' WHERE thread_id = %s AND reply_state = 'answered' "
                    "AND id = ANY(%s)",
                    (thread_id, answered_ids),
                )
        return True

    async def transcript(
        self, *, thread_id: int, after_id: int = 0, through_id: int | None = None
    ) -> list[LoggedMessage]:
        rows = await self._db.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = %s AND id > %s "
            "AND (%s::bigint IS NULL OR id <= %s) "
            "AND deleted_utc IS NULL AND replaced_utc IS NULL "
            "AND (reply_state IS NULL OR reply_state = 'answered') ORDER BY id",
            (thread_id, after_id, through_id, through_id),
        )
        return [LoggedMessage.from_row(row) for row in rows]

    async def visible(self, *, thread_id: int, ids: list[int]) -> list[LoggedMessage]:
        rows = await self._db.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = %s AND deleted_utc IS NULL "
            "AND id = ANY(%s) ORDER BY id",
            (thread_id, ids),
        )
        return [LoggedMessage.from_row(row) for row in rows]

    async def all_messages(self, *, thread_id: int) -> list[LoggedMessage]:
        rows = await self._db.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = %s ORDER BY id", (thread_id,)
        )
        return [LoggedMessage.from_row(row) for row in rows]

    async def thread(self, *, thread_id: int) -> ThreadRecord | None:
        row = await self._db.fetchone(f"SELECT {THREAD_COLUMNS} FROM threads WHERE id = %s", (thread_id,))
        return None if row is None else thread_from_row(row)
