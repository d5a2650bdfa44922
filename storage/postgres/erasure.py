"""Forgetting on Postgres: the contract of ``storage/erasure.py`` (rows, summaries, trail and journal in one
transaction), and what "gone from disk" means here.

The journal that running routers poll is read as "ids greater than the last one seen". Identity values are
handed out at insert time but become visible at commit, so two workers' erasures could commit out of id order
and a poller could skip the lower one for good. Every transaction that writes the journal therefore first takes
``pg_advisory_xact_lock(JOURNAL_LOCK)``: journal rows commit in id order. Erasures are rare; the lock ends
with the transaction.

Postgres keeps an updated or deleted row's old version as a dead tuple until VACUUM; no index holds message
text (search reads the rows, see storage/postgres/search.py). After each erasure the touched tables are
vacuumed (outside a transaction), which removes the dead tuples: no query and no ``pg_dump`` can find the old
text any more, and VACUUM compacts each page it prunes (the contract suite checks the table's raw pages). What
VACUUM does not promise is to zero every byte it frees: a copy may survive in a page's free space until
Postgres writes there, readable only with access to the server's data directory. The text also stays in the
write-ahead log until its segment is recycled (after the next checkpoints: minutes with the defaults) and in
any WAL archive or base backup taken meanwhile. ``VACUUM FULL`` would rewrite the tables into new files,
but it locks them against every worker for the duration; it is left to the operator (README, "Postgres").
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from storage.postgres.db import Connection, PostgresDatabase
from storage.records import (
    KIND_DELETED,
    KIND_EDITED,
    KIND_THREAD,
    REMOVED_EXCERPT,
    Erasure,
    UserErasure,
    group_by_thread,
    iso,
)

log = logging.getLogger(__name__)

JOURNAL_LOCK = 7_318_112_002
# Every table that can hold a forgotten message's text (or, for a thread, its title), or a forgotten person's id
# or name, in a row version.
ERASED_TABLES = (
    "messages", "sessions", "tool_calls", "threads", "approvals", "feedback", "cards", "usage", "thread_settings"
)  # fmt: skip

_INVALIDATE_SUMMARIES = (
    "UPDATE sessions SET summary = NULL, summary_through_message_id = NULL "
    "WHERE thread_id = %s AND summary IS NOT NULL AND (summary_through_message_id IS NULL "
    "OR summary_through_message_id >= %s)"
)


async def _lock_journal(connection: Connection) -> None:
    await connection.execute("SELECT pg_advisory_xact_lock(%s)", (JOURNAL_LOCK,))


async def _journal(connection: Connection, *, thread_id: int, message_id: int | None, kind: str) -> None:
    await connection.execute(
        "INSERT INTO erasures (thread_id, message_id, kind, created_utc) VALUES (%s, %s, %s, %s)",
        (thread_id, message_id, kind, iso(datetime.now(UTC))),
    )


async def _scrub_trail(connection: Connection, *, message_ids: list[int]) -> None:
    """Tool results that quoted one of ``message_ids`` lose their excerpt."""
    await connection.execute(
        "UPDATE tool_calls SET result_excerpt = %s WHERE EXISTS (SELECT 1 FROM "
        "jsonb_array_elements(tool_calls.cites_json::jsonb) AS cited (id) WHERE (cited.id)::bigint = ANY(%s))",
        (REMOVED_EXCERPT, message_ids),
    )


# The tool calls and approval requests of the turn that answered user message q: placed (or asked) from it until
# the next reply of the bot, as in storage/erasure.py ('9' sorts after every ISO time).
_NEXT_REPLY = (
    "(SELECT MIN(r.id) FROM messages r WHERE r.thread_id = q.thread_id AND r.role = 'assistant' AND r.id > q.id)"
)
_SCRUB_TURN_CALLS = (
    "UPDATE tool_calls SET arguments_json = '{}', result_excerpt = %s FROM messages q "
    "WHERE q.id = ANY(%s) AND q.role = 'user' AND q.thread_id = tool_calls.thread_id "
    f"AND tool_calls.after_message_id >= q.id AND tool_calls.after_message_id < COALESCE({_NEXT_REPLY}, {2**62})"
)
_SCRUB_TURN_APPROVALS = (
    "UPDATE approvals SET arguments_preview = %s FROM messages q "
    "WHERE q.id = ANY(%s) AND q.role = 'user' AND q.thread_id = approvals.thread_id "
    "AND approvals.created_utc >= q.logged_utc AND approvals.created_utc < "
    f"COALESCE((SELECT logged_utc FROM messages WHERE id = {_NEXT_REPLY}), '9')"
)
_FORGET_TITLES = (
    "UPDATE threads SET title = NULL, title_message_id = NULL FROM messages m "
    "WHERE m.id = ANY(%s) AND m.thread_id = threads.id AND m.platform_message_id = threads.title_message_id"
)


async def _follow_copies(connection: Connection, *, message_ids: list[int]) -> None:
    """What was made from ``message_ids`` goes with their text: quotes, the turn's tool calls, the title."""
    await _scrub_trail(connection, message_ids=message_ids)
    await connection.execute(_SCRUB_TURN_CALLS, (REMOVED_EXCERPT, message_ids))
    await connection.execute(_SCRUB_TURN_APPROVALS, (REMOVED_EXCERPT, message_ids))
    await connection.execute(_FORGET_TITLES, (message_ids,))


async def _erase_person(connection: Connection, *, platform: str, user_id: str) -> None:
    """Take ``user_id``'s id and name off the rows of what they did on ``platform`` (the facts stay)."""
    threads = "SELECT id FROM threads WHERE platform = %(platform)s"
    for statement in (
        "UPDATE tool_calls SET decided_by = NULL WHERE (thread_id, decided_by) IN (SELECT thread_id, "
        f"decided_by_name FROM approvals WHERE decided_by_id = %(user)s AND thread_id IN ({threads}))",
        "UPDATE approvals SET decided_by_id = NULL, decided_by_name = NULL "
        f"WHERE decided_by_id = %(user)s AND thread_id IN ({threads})",
        "UPDATE cards SET resolved_by_id = NULL, resolved_by_name = NULL WHERE resolved_by_id = %(user)s "
        f"AND thread_id IN ({threads})",
        f"UPDATE thread_settings SET changed_by_id = NULL WHERE changed_by_id = %(user)s AND thread_id IN ({threads})",
        f"UPDATE usage SET user_id = NULL WHERE user_id = %(user)s AND (thread_id IS NULL OR thread_id IN ({threads}))",
        "UPDATE feedback SET user_id = 'forgotten:' || id, user_name = '' WHERE user_id = %(user)s AND message_id IN "
        f"(SELECT id FROM messages WHERE thread_id IN ({threads}))",
    ):
        await connection.execute(statement, {"user": user_id, "platform": platform})


async def _blank(connection: Connection, *, message_ids: list[int], now: str, erase_author: bool) -> None:
    author = ", author_id = '', author_name = ''" if erase_author else ""
    await connection.execute(
        "UPDATE messages SET content = '', attachments_json = '[]', deleted_utc = COALESCE(deleted_utc, %s), "
        f"reply_state = CASE WHEN reply_state = 'waiting' THEN 'answered' ELSE reply_state END{author} "
        "WHERE id = ANY(%s)",
        (now, message_ids),
    )
    await _follow_copies(connection, message_ids=message_ids)


async def _erase_rows(connection: Connection, *, rows: list[Any], now: str, erase_author: bool) -> None:
    """Blank ``rows`` (id, thread_id), invalidate the summaries that covered them, journal each one."""
    if not rows:
        return
    await _blank(connection, message_ids=[int(row["id"]) for row in rows], now=now, erase_author=erase_author)
    oldest: dict[int, int] = {}
    for row in rows:
        oldest.setdefault(int(row["thread_id"]), int(row["id"]))
        await _journal(connection, thread_id=row["thread_id"], message_id=row["id"], kind=KIND_DELETED)
    for thread_id, message_id in oldest.items():
        await connection.execute(_INVALIDATE_SUMMARIES, (thread_id, message_id))


class PostgresErasureStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def delete_message(self, *, thread_id: int, platform_message_id: str, deleted_utc: datetime) -> int | None:
        async with self._db.transaction() as connection:
            await _lock_journal(connection)
            cursor = await connection.execute(
                "SELECT id FROM messages WHERE thread_id = %s AND platform_message_id = %s AND deleted_utc IS NULL "
                "FOR UPDATE",
                (thread_id, platform_message_id),
            )
            row = await cursor.fetchone()
            if row is None:
                return None
            message_id = int(row["id"])
            await _blank(connection, message_ids=[message_id], now=iso(deleted_utc), erase_author=False)
            await connection.execute(_INVALIDATE_SUMMARIES, (thread_id, message_id))
            await _journal(connection, thread_id=thread_id, message_id=message_id, kind=KIND_DELETED)
        await self._leave_no_trace()
        return message_id

    async def edit_message(
        self, *, thread_id: int, platform_message_id: str, content: str, edited_utc: datetime
    ) -> int | None:
        async with self._db.transaction() as connection:
            await _lock_journal(connection)
            cursor = await connection.execute(
                "SELECT id, content FROM messages WHERE thread_id = %s AND platform_message_id = %s "
                "AND deleted_utc IS NULL FOR UPDATE",
                (thread_id, platform_message_id),
            )
            row = await cursor.fetchone()
            if row is None or row["content"] == content:
                return None
            message_id = int(row["id"])
            await connection.execute(
                "UPDATE messages SET content = %s, edited_utc = %s WHERE id = %s",
                (content, iso(edited_utc), message_id),
            )
            await _follow_copies(connection, message_ids=[message_id])
            await connection.execute(_INVALIDATE_SUMMARIES, (thread_id, message_id))
            await _journal(connection, thread_id=thread_id, message_id=message_id, kind=KIND_EDITED)
        await self._leave_no_trace()
        return message_id

    async def forget_thread(self, *, thread_id: int, now: datetime, keep_tracking: bool = False) -> int:
        async with self._db.transaction() as connection:
            await _lock_journal(connection)
            cursor = await connection.execute("SELECT COUNT(*) AS n FROM messages WHERE thread_id = %s", (thread_id,))
            count = await cursor.fetchone()
            cursor = await connection.execute(
                "DELETE FROM threads WHERE id = %s RETURNING platform, workspace, channel, thread", (thread_id,)
            )
            key = await cursor.fetchone()
            if keep_tracking and key is not None:  # the identity never hands an id out twice
                await connection.execute(
                    "INSERT INTO threads (platform, workspace, channel, thread, created_utc) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (key["platform"], key["workspace"], key["channel"], key["thread"], iso(now)),
                )
            await _journal(connection, thread_id=thread_id, message_id=None, kind=KIND_THREAD)
        await self._leave_no_trace()
        return 0 if count is None else int(count["n"])

    async def forget_user(self, *, platform: str, user_id: str, now: datetime) -> list[UserErasure]:
        async with self._db.transaction() as connection:
            await _lock_journal(connection)
            cursor = await connection.execute(
                "SELECT m.id, m.thread_id, t.thread FROM messages m JOIN threads t ON t.id = m.thread_id "
                "WHERE t.platform = %s AND m.author_id = %s AND m.role = 'user' ORDER BY m.id FOR UPDATE OF m",
                (platform, user_id),
            )
            rows = await cursor.fetchall()
            await _erase_rows(connection, rows=rows, now=iso(now), erase_author=True)
            await _erase_person(connection, platform=platform, user_id=user_id)
            cursor = await connection.execute(
                "SELECT id, title FROM threads WHERE id = ANY(%s)", ([int(row["thread_id"]) for row in rows],)
            )  # read after the erasure: a title made from their message is gone
            titles = {int(row["id"]): row["title"] for row in await cursor.fetchall()}
        await self._leave_no_trace()
        return group_by_thread(rows, titles=titles)

    async def purge_older_than(self, *, cutoff: datetime, now: datetime) -> int:
        async with self._db.transaction() as connection:
            await _lock_journal(connection)
            cursor = await connection.execute(
                "SELECT id, thread_id FROM messages WHERE sent_utc < %s AND "
                "(reply_state IS NULL OR reply_state != 'waiting') ORDER BY id FOR UPDATE",
                (iso(cutoff),),
            )
            rows = await cursor.fetchall()
            await _erase_rows(connection, rows=rows, now=iso(now), erase_author=True)
            if rows:
                await connection.execute("DELETE FROM messages WHERE id = ANY(%s)", ([int(r["id"]) for r in rows],))
        if rows:
            await self._leave_no_trace()
        return len(rows)

    async def _leave_no_trace(self) -> None:
        """VACUUM what the erasure touched, so its old row versions and index entries are gone."""
        try:
            await self._db.vacuum(ERASED_TABLES)
        except Exception:
            # The erasure itself is committed; the next erasure's (or autovacuum's) VACUUM finishes the job.
            log.exception("VACUUM after an erasure failed; the dead row versions stay until the next one")

    async def latest_id(self, *, thread_id: int | None = None) -> int:
        if thread_id is None:
            row = await self._db.fetchone("SELECT COALESCE(MAX(id), 0) AS n FROM erasures")
        else:
            row = await self._db.fetchone(
                "SELECT COALESCE(MAX(id), 0) AS n FROM erasures WHERE thread_id = %s", (thread_id,)
            )
        return 0 if row is None else int(row["n"])

    async def since(self, *, after_id: int) -> list[Erasure]:
        rows = await self._db.fetchall(
            "SELECT id, thread_id, message_id, kind FROM erasures WHERE id > %s ORDER BY id", (after_id,)
        )
        return [
            Erasure(int(r["id"]), int(r["thread_id"]), None if r["message_id"] is None else int(r["message_id"]),
                    r["kind"])
            for r in rows
        ]  # fmt: skip

    async def prune_journal(self, *, before: datetime) -> int:
        return await self._db.execute("DELETE FROM erasures WHERE created_utc < %s", (iso(before),))
