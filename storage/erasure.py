"""Forgetting: every way a message's text leaves the database, and the journal that tells live sessions.

A deleted or edited message has copies beyond its row: the catch-up summaries stored in ``sessions`` that were
written while it was there, and the bytes SQLite leaves in free pages and in the WAL. Each operation here does
its whole job in one transaction:

- the rows change (a deletion blanks the text and attachments; the row stays as a tombstone so a redelivery of
  the same platform message cannot log the text again);
- every stored summary that covered a changed message is invalidated (its text set to NULL): summaries are
  incremental, so a summary ``through`` message N saw every message up to N;
- an ``erasures`` journal row is written per changed message (or per forgotten thread), which every running
  router polls, so a live session in this process or another drops the text before its next turn, and a
  summary being written meanwhile is recognised as stale and redone.

The tool trail rows whose results quoted a changed message (search_thread cites the ids it quotes) lose their
excerpt too, and so do the tool calls (arguments and result) and approval requests of the turn that answered a
changed user message: the model's arguments often repeat the question's words. A thread title made from a
changed message (``threads.title_message_id``) is blanked. ``forget --user`` also takes the person's id and name
off every row that recorded what they did (usage, approvals, card choices, feedback, model choices).

The full-text index follows the rows through triggers, but FTS5 only marks deleted entries until its segments
are merged; the SQLite this runs on (3.40) has no FTS5 ``secure-delete`` option, so the index is merged
('optimize') after each erasure: about 0.2 s for a 100,000-message log, and erasures are rare.

Then the WAL is checkpointed with TRUNCATE. With ``secure_delete`` on (see ``storage/db.py``), SQLite zeroes
freed cells and pages, so after the checkpoint no byte of the old text is left in the database file, the -wal
or the -shm.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import UTC, datetime

from storage.db import Database
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

_INVALIDATE_SUMMARIES = (
    "UPDATE sessions SET summary = NULL, summary_through_message_id = NULL "
    "WHERE thread_id = ? AND summary IS NOT NULL AND (summary_through_message_id IS NULL "
    "OR summary_through_message_id >= ?)"
)


def _journal(connection: sqlite3.Connection, *, thread_id: int, message_id: int | None, kind: str) -> None:
    """One journal row, stamped with when it was written (not the platform's time of the change)."""
    connection.execute(
        "INSERT INTO erasures (thread_id, message_id, kind, created_utc) VALUES (?, ?, ?, ?)",
        (thread_id, message_id, kind, iso(datetime.now(UTC))),
    )


def _scrub_trail(connection: sqlite3.Connection, *, message_ids: list[int]) -> None:
    """Tool results that quoted one of ``message_ids`` lose their excerpt (one pass over the trail for all of
    them: one pass per message made ``forget --user`` of 2,000 messages take 44 s beside a 50,000-call trail)."""
    connection.execute(
        "UPDATE tool_calls SET result_excerpt = ? WHERE cites_json != '[]' AND EXISTS (SELECT 1 FROM "
        "json_each(tool_calls.cites_json) AS cited WHERE cited.value IN (SELECT value FROM json_each(?)))",
        (REMOVED_EXCERPT, json.dumps(message_ids)),
    )


# The tool calls and approval requests of the turn that answered user message ?1: placed (or asked) from it
# until the next reply of the bot ('9' sorts after every ISO time).
# Each statement starts from the message's row, so it reads the thread's rows by index, not whole tables.
_QUESTION_THREAD = "(SELECT thread_id FROM messages WHERE id = ?1 AND role = 'user')"
_NEXT_REPLY = (
    "(SELECT MIN(r.id) FROM messages q JOIN messages r ON r.thread_id = q.thread_id "
    "WHERE q.id = ?1 AND r.role = 'assistant' AND r.id > ?1)"
)
_SCRUB_TURN_CALLS = (
    f"UPDATE tool_calls SET arguments_json = '{{}}', result_excerpt = ?2 WHERE thread_id = {_QUESTION_THREAD} "
    f"AND after_message_id >= ?1 AND after_message_id < COALESCE({_NEXT_REPLY}, {2**62})"
)
_SCRUB_TURN_APPROVALS = (
    f"UPDATE approvals SET arguments_preview = ?2 WHERE thread_id = {_QUESTION_THREAD} "
    "AND created_utc >= (SELECT logged_utc FROM messages WHERE id = ?1) "
    f"AND created_utc < COALESCE((SELECT logged_utc FROM messages WHERE id = {_NEXT_REPLY}), '9')"
)
_FORGET_TITLES = (
    "UPDATE threads SET title = NULL, title_message_id = NULL "
    "WHERE id = (SELECT thread_id FROM messages WHERE id = ?1) "
    "AND title_message_id = (SELECT platform_message_id FROM messages WHERE id = ?1)"
)


def _follow_copies(connection: sqlite3.Connection, *, message_ids: list[int]) -> None:
    """What was made from ``message_ids`` goes with their text: quotes, the turn's tool calls, the title."""
    _scrub_trail(connection, message_ids=message_ids)
    connection.executemany(_SCRUB_TURN_CALLS, [(m, REMOVED_EXCERPT) for m in message_ids])
    connection.executemany(_SCRUB_TURN_APPROVALS, [(m, REMOVED_EXCERPT) for m in message_ids])
    connection.executemany(_FORGET_TITLES, [(m,) for m in message_ids])


def _erase_person(connection: sqlite3.Connection, *, platform: str, user_id: str) -> None:
    """Take ``user_id``'s id and name off the rows of what they did on ``platform`` (the facts stay)."""
    threads = "SELECT id FROM threads WHERE platform = ?2"
    for statement in (
        "UPDATE tool_calls SET decided_by = NULL WHERE (thread_id, decided_by) IN "
        f"(SELECT thread_id, decided_by_name FROM approvals WHERE decided_by_id = ?1 AND thread_id IN ({threads}))",
        "UPDATE approvals SET decided_by_id = NULL, decided_by_name = NULL "
        f"WHERE decided_by_id = ?1 AND thread_id IN ({threads})",
        f"UPDATE cards SET resolved_by_id = NULL, resolved_by_name = NULL WHERE resolved_by_id = ?1 "
        f"AND thread_id IN ({threads})",
        f"UPDATE thread_settings SET changed_by_id = NULL WHERE changed_by_id = ?1 AND thread_id IN ({threads})",
        f"UPDATE usage SET user_id = NULL WHERE user_id = ?1 AND (thread_id IS NULL OR thread_id IN ({threads}))",
        "UPDATE feedback SET user_id = 'forgotten:' || id, user_name = '' WHERE user_id = ?1 AND message_id IN "
        f"(SELECT id FROM messages WHERE thread_id IN ({threads}))",
    ):
        connection.execute(statement, (user_id, platform))


def _blank(connection: sqlite3.Connection, *, message_ids: list[int], now: str, erase_author: bool) -> None:
    """Blank rows and mark them deleted; a waiting one stops waiting (there is nothing left to answer)."""
    author = ", author_id = '', author_name = ''" if erase_author else ""
    connection.executemany(
        "UPDATE messages SET content = '', attachments_json = '[]', deleted_utc = COALESCE(deleted_utc, ?), "
        f"reply_state = CASE WHEN reply_state = 'waiting' THEN 'answered' ELSE reply_state END{author} WHERE id = ?",
        [(now, message_id) for message_id in message_ids],
    )
    _follow_copies(connection, message_ids=message_ids)


class ErasureStore:
    """Deletions, edits, thread and person erasure, retention, and the journal live sessions follow."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def delete_message(self, *, thread_id: int, platform_message_id: str, deleted_utc: datetime) -> int | None:
        """Blank a message deleted on the platform; return its log id (None when unknown or already deleted)."""
        now = iso(deleted_utc)

        def work(connection: sqlite3.Connection) -> int | None:
            row = connection.execute(
                "SELECT id FROM messages WHERE thread_id = ? AND platform_message_id = ? AND deleted_utc IS NULL",
                (thread_id, platform_message_id),
            ).fetchone()
            if row is None:
                return None
            message_id = int(row["id"])
            _blank(connection, message_ids=[message_id], now=now, erase_author=False)
            connection.execute(_INVALIDATE_SUMMARIES, (thread_id, message_id))
            _journal(connection, thread_id=thread_id, message_id=message_id, kind=KIND_DELETED)
            return message_id

        message_id = await self._db.run(work)
        if message_id is not None:
            await self._leave_no_trace()
        return message_id

    async def edit_message(
        self, *, thread_id: int, platform_message_id: str, content: str, edited_utc: datetime
    ) -> int | None:
        """Store a message's new text; return its log id (None when unknown, deleted or unchanged)."""
        now = iso(edited_utc)

        def work(connection: sqlite3.Connection) -> int | None:
            row = connection.execute(
                "SELECT id, content FROM messages WHERE thread_id = ? AND platform_message_id = ? "
                "AND deleted_utc IS NULL",
                (thread_id, platform_message_id),
            ).fetchone()
            if row is None or row["content"] == content:
                return None
            message_id = int(row["id"])
            connection.execute(
                "UPDATE messages SET content = ?, edited_utc = ? WHERE id = ?", (content, now, message_id)
            )
            _follow_copies(connection, message_ids=[message_id])
            connection.execute(_INVALIDATE_SUMMARIES, (thread_id, message_id))
            _journal(connection, thread_id=thread_id, message_id=message_id, kind=KIND_EDITED)
            return message_id

        message_id = await self._db.run(work)
        if message_id is not None:
            await self._leave_no_trace()
        return message_id

    async def forget_thread(self, *, thread_id: int, now: datetime, keep_tracking: bool = False) -> int:
        """Purge a thread (messages, sessions, cards, deliveries cascade); return how many messages went.

        ``keep_tracking`` leaves a bare row under a new id (see ``storage/protocols.py``): ``threads.id`` is
        AUTOINCREMENT (m008), so the new id is above every id ever handed out, the forgotten one included.
        """

        def work(connection: sqlite3.Connection) -> int:
            count = connection.execute("SELECT COUNT(*) FROM messages WHERE thread_id = ?", (thread_id,)).fetchone()
            key = connection.execute(
                "SELECT platform, workspace, channel, thread FROM threads WHERE id = ?",
                (thread_id,),
            ).fetchone()
            connection.execute("DELETE FROM threads WHERE id = ?", (thread_id,))
            if keep_tracking and key is not None:
                connection.execute(
                    "INSERT INTO threads (platform, workspace, channel, thread, created_utc) VALUES (?, ?, ?, ?, ?)",
                    (key["platform"], key["workspace"], key["channel"], key["thread"], iso(now)),
                )
            _journal(connection, thread_id=thread_id, message_id=None, kind=KIND_THREAD)
            return int(count[0])

        count = await self._db.run(work)
        await self._leave_no_trace()
        return count

    async def forget_user(self, *, platform: str, user_id: str, now: datetime) -> list[UserErasure]:
        """Erase one person's messages (text, attachments, name and id) in every thread of ``platform``."""
        when = iso(now)

        def work(connection: sqlite3.Connection) -> list[UserErasure]:
            rows = connection.execute(
                "SELECT m.id, m.thread_id, t.thread FROM messages m JOIN threads t ON t.id = m.thread_id "
                "WHERE t.platform = ? AND m.author_id = ? AND m.role = 'user' ORDER BY m.id",
                (platform, user_id),
            ).fetchall()
            self._erase_rows(connection, rows=rows, now=when, erase_author=True)
            _erase_person(connection, platform=platform, user_id=user_id)
            titles = connection.execute(
                "SELECT id, title FROM threads WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps([row["thread_id"] for row in rows]),),
            ).fetchall()  # read after the erasure: a title made from their message is gone
            return group_by_thread(rows, titles={row["id"]: row["title"] for row in titles})

        erased = await self._db.run(work)
        await self._leave_no_trace()
        return erased

    async def purge_older_than(self, *, cutoff: datetime, now: datetime) -> int:
        """Delete messages sent before ``cutoff`` (never one still waiting for an answer); return the count."""

        def work(connection: sqlite3.Connection) -> int:
            rows = connection.execute(
                "SELECT id, thread_id FROM messages WHERE sent_utc < ? AND "
                "(reply_state IS NULL OR reply_state != 'waiting') ORDER BY id",
                (iso(cutoff),),
            ).fetchall()
            self._erase_rows(connection, rows=rows, now=iso(now), erase_author=True)
            connection.executemany("DELETE FROM messages WHERE id = ?", [(row["id"],) for row in rows])
            return len(rows)

        count = await self._db.run(work)
        if count:
            await self._leave_no_trace()
        return count

    async def _leave_no_trace(self) -> None:
        """Merge the search index (dropping what it only marked deleted), then checkpoint and truncate the WAL."""
        await self._db.execute("INSERT INTO messages_fts (messages_fts) VALUES ('optimize')")
        await self._db.checkpoint()

    @staticmethod
    def _erase_rows(connection: sqlite3.Connection, *, rows: list[sqlite3.Row], now: str, erase_author: bool) -> None:
        """Blank ``rows`` (id, thread_id), invalidate the summaries that covered them, journal each one."""
        _blank(connection, message_ids=[row["id"] for row in rows], now=now, erase_author=erase_author)
        oldest: dict[int, int] = {}
        for row in rows:
            oldest.setdefault(row["thread_id"], row["id"])
            _journal(connection, thread_id=row["thread_id"], message_id=row["id"], kind=KIND_DELETED)
        connection.executemany(_INVALIDATE_SUMMARIES, list(oldest.items()))

    # -- the journal ----------------------------------------------------------------------------------------

    async def latest_id(self, *, thread_id: int | None = None) -> int:
        """The newest journal id (of one thread when given), 0 when there is none."""
        if thread_id is None:
            row = await self._db.fetchone("SELECT COALESCE(MAX(id), 0) FROM erasures")
        else:
            row = await self._db.fetchone("SELECT COALESCE(MAX(id), 0) FROM erasures WHERE thread_id = ?", (thread_id,))
        return int(row[0]) if row is not None else 0

    async def since(self, *, after_id: int) -> list[Erasure]:
        """Journal rows newer than ``after_id``, oldest first."""
        rows = await self._db.fetchall(
            "SELECT id, thread_id, message_id, kind FROM erasures WHERE id > ? ORDER BY id", (after_id,)
        )
        return [Erasure(row["id"], row["thread_id"], row["message_id"], row["kind"]) for row in rows]

    async def prune_journal(self, *, before: datetime) -> int:
        """Drop journal rows older than ``before``: running routers have long applied them."""
        return await self._db.execute("DELETE FROM erasures WHERE created_utc < ?", (iso(before),))
