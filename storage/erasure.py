"""Forgetting: every way a message's text leaves the database, and the journal that tells live sessions.

A deleted or edited message has copies beyond its row: the catch-up summaries stored in ``sessions`` that were
written while it was there, and the bytes the database keeps outside its live rows (SQLite's free pages and WAL,
Postgres's dead tuples). Each operation here does its whole job in one transaction:

- the rows change (a deletion blanks the text, the attachments and a voice message's transcript; the row stays as
  a tombstone so a redelivery of the same platform message cannot log the text again);
- every stored summary that covered a changed message is invalidated (its text set to NULL): summaries are
  incremental, so a summary ``through`` message N saw every message up to N;
- an ``erasures`` journal row is written per changed message (or per forgotten thread), which every running
  router polls, so a live session in this process or another drops the text before its next turn, and a
  summary being written meanwhile is recognised as stale and redone.

The tool trail rows whose results quoted a changed message (search_thread cites the ids it quotes) lose their
excerpt too, and so do the tool calls (arguments and result) and approval requests of the turn that answered a
changed user message: the model's arguments often repeat the question's words. A thread title made from a
changed message (``threads.title_message_id``) is blanked, and its journal row says so (``title_forgotten``):
the process that blanks it may hold no platform connection (``forget --user``, retention), so a running router
that follows the journal renames the thread on its platform, once, by claiming the row (:meth:`claim_title`).
A forgotten thread (``forget_thread``) owes no rename: its messages, and so its title's words, are still on the
platform. ``forget --user`` also takes the person's id and name off every row that recorded what they did (usage,
approvals, card choices, feedback, model choices).

The journal that running routers poll is read as "ids greater than the last one seen". On Postgres identity
values are handed out at insert time but become visible at commit, so two workers' erasures could commit out of
id order and a poller could skip the lower one for good: every transaction that writes the journal therefore
first takes the lock ``JOURNAL_LOCK`` (SQLite's one writer is serialized already), so journal rows commit in id
order. Erasures are rare; the lock ends with the transaction.

Then the backend removes what it keeps of the old text outside the live rows (``SqlDatabase.scrub``): SQLite
merges the FTS5 index (which only marks deleted entries until its segments are merged) and truncates the WAL,
with ``secure_delete`` zeroing freed pages (storage/sqlite/db.py); Postgres VACUUMs the touched tables
(storage/postgres/db.py says what that does and does not promise).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from storage.records import (
    KIND_DELETED,
    KIND_EDITED,
    KIND_THREAD,
    REMOVED_EXCERPT,
    Erasure,
    MessageChange,
    UserErasure,
    group_by_thread,
    iso,
)
from storage.sql import Row, SqlDatabase, Transaction

JOURNAL_LOCK = 7_318_112_002

_INVALIDATE_SUMMARIES = (
    "UPDATE sessions SET summary = NULL, summary_through_message_id = NULL "
    "WHERE thread_id = ? AND summary IS NOT NULL AND (summary_through_message_id IS NULL "
    "OR summary_through_message_id >= ?)"
)


# The tool calls and approval requests of the turn that answered user message ? (each statement runs once per
# message, starting from its row, so it reads the thread's rows by index): placed (or asked) from it until the
# next reply of the bot ('9' sorts after every ISO time).
_QUESTION_THREAD = "(SELECT thread_id FROM messages WHERE id = ? AND role = 'user')"
_NEXT_REPLY = (
    "(SELECT MIN(r.id) FROM messages q JOIN messages r ON r.thread_id = q.thread_id "
    "WHERE q.id = ? AND r.role = 'assistant' AND r.id > q.id)"
)
_SCRUB_TURN_CALLS = (
    f"UPDATE tool_calls SET arguments_json = ?, result_excerpt = ? WHERE thread_id = {_QUESTION_THREAD} "
    f"AND after_message_id >= ? AND after_message_id < COALESCE({_NEXT_REPLY}, {2**62})"
)
_SCRUB_TURN_APPROVALS = (
    f"UPDATE approvals SET arguments_preview = ? WHERE thread_id = {_QUESTION_THREAD} "
    "AND created_utc >= (SELECT logged_utc FROM messages WHERE id = ?) "
    f"AND created_utc < COALESCE((SELECT logged_utc FROM messages WHERE id = {_NEXT_REPLY}), '9')"
)
_FORGET_TITLES = (
    "UPDATE threads SET title = NULL, title_message_id = NULL WHERE id = (SELECT thread_id FROM messages WHERE id = ?) "
    "AND title_message_id = (SELECT platform_message_id FROM messages WHERE id = ?)"
)
# What a person did, on one platform: each statement takes (user id, platform).
_THREADS_OF = "(SELECT id FROM threads WHERE platform = ?)"
_ERASE_PERSON = (
    "UPDATE tool_calls SET decided_by = NULL WHERE (thread_id, decided_by) IN (SELECT thread_id, decided_by_name "
    f"FROM approvals WHERE decided_by_id = ? AND thread_id IN {_THREADS_OF})",
    f"UPDATE approvals SET decided_by_id = NULL, decided_by_name = NULL WHERE decided_by_id = ? "
    f"AND thread_id IN {_THREADS_OF}",
    "UPDATE cards SET resolved_by_id = NULL, resolved_by_name = NULL WHERE resolved_by_id = ? "
    f"AND thread_id IN {_THREADS_OF}",
    f"UPDATE thread_settings SET changed_by_id = NULL WHERE changed_by_id = ? AND thread_id IN {_THREADS_OF}",
    f"UPDATE usage SET user_id = NULL WHERE user_id = ? AND (thread_id IS NULL OR thread_id IN {_THREADS_OF})",
    "UPDATE feedback SET user_id = 'forgotten:' || id, user_name = '' WHERE user_id = ? AND message_id IN "
    f"(SELECT id FROM messages WHERE thread_id IN {_THREADS_OF})",
)
_JOURNAL = "INSERT INTO erasures (thread_id, message_id, kind, created_utc, title_forgotten) VALUES (?, ?, ?, ?, ?)"
# The messages of a list a thread's title was made from (read before they are blanked).
_TITLED = (
    "SELECT m.id FROM messages m JOIN threads t ON t.id = m.thread_id WHERE m.id {in_ids} "
    "AND t.title IS NOT NULL AND t.title_message_id = m.platform_message_id"
)
_ERASURE_COLUMNS = "id, thread_id, message_id, kind, title_forgotten"


async def _journal(
    tx: Transaction, *, thread_id: int, message_id: int | None, kind: str, title_forgotten: bool = False
) -> None:
    """One journal row, stamped with when it was written (not the platform's time of the change)."""
    await tx.execute(_JOURNAL, (thread_id, message_id, kind, iso(datetime.now(UTC)), int(title_forgotten)))


def _erasure(row: Row) -> Erasure:
    message_id = None if row["message_id"] is None else int(row["message_id"])
    return Erasure(int(row["id"]), int(row["thread_id"]), message_id, row["kind"], bool(row["title_forgotten"]))


class ErasureStore:
    """Deletions, edits, thread and person erasure, retention, and the journal live sessions follow."""

    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def _follow_copies(self, tx: Transaction, *, message_ids: list[int]) -> None:
        """What was made from ``message_ids`` goes with their text: quotes (one pass over the trail for all of
        them), the turn's tool calls and approvals, the title."""
        await tx.execute(
            "UPDATE tool_calls SET result_excerpt = ? WHERE cites_json != '[]' AND EXISTS "
            "(SELECT 1 FROM {cited} WHERE CAST(cited.value AS BIGINT) {in_ids})",
            (REMOVED_EXCERPT, self._db.dialect.array(message_ids)),
        )
        await tx.executemany(_SCRUB_TURN_CALLS, [("{}", REMOVED_EXCERPT, m, m, m) for m in message_ids])
        await tx.executemany(_SCRUB_TURN_APPROVALS, [(REMOVED_EXCERPT, m, m, m) for m in message_ids])
        await tx.executemany(_FORGET_TITLES, [(m, m) for m in message_ids])

    async def _blank(self, tx: Transaction, *, message_ids: list[int], now: str, erase_author: bool) -> None:
        """Blank rows and mark them deleted; a waiting one stops waiting (there is nothing left to answer)."""
        author = ", author_id = '', author_name = ''" if erase_author else ""
        await tx.execute(
            "UPDATE messages SET content = '', attachments_json = '[]', transcript = NULL, "
            "deleted_utc = COALESCE(deleted_utc, ?), "
            f"reply_state = CASE WHEN reply_state = 'waiting' THEN 'answered' ELSE reply_state END{author} "
            "WHERE id {in_ids}",
            (now, self._db.dialect.array(message_ids)),
        )
        await self._follow_copies(tx, message_ids=message_ids)

    async def _erase_rows(self, tx: Transaction, *, rows: Sequence[Row], now: str, erase_author: bool) -> None:
        """Blank ``rows`` (id, thread_id), invalidate the summaries that covered them, journal each one."""
        if not rows:
            return
        ids = [int(row["id"]) for row in rows]
        titled = {int(r["id"]) for r in await tx.fetchall(_TITLED, (self._db.dialect.array(ids),))}
        await self._blank(tx, message_ids=ids, now=now, erase_author=erase_author)
        oldest: dict[int, int] = {}
        for row in rows:
            oldest.setdefault(int(row["thread_id"]), int(row["id"]))
        stamp = iso(datetime.now(UTC))
        await tx.executemany(
            _JOURNAL,
            [
                (int(row["thread_id"]), int(row["id"]), KIND_DELETED, stamp, int(int(row["id"]) in titled))
                for row in rows
            ],
        )
        await tx.executemany(_INVALIDATE_SUMMARIES, list(oldest.items()))

    async def delete_message(
        self, *, thread_id: int, platform_message_id: str, deleted_utc: datetime
    ) -> MessageChange | None:
        """Blank a message deleted on the platform; return what changed (None when unknown or already deleted)."""
        return await self._change(thread_id=thread_id, platform_message_id=platform_message_id, when=deleted_utc)

    async def edit_message(
        self, *, thread_id: int, platform_message_id: str, content: str, edited_utc: datetime
    ) -> MessageChange | None:
        """Store a message's new text; return what changed (None when unknown, deleted or unchanged)."""
        return await self._change(
            thread_id=thread_id, platform_message_id=platform_message_id, when=edited_utc, content=content
        )

    async def _change(
        self, *, thread_id: int, platform_message_id: str, when: datetime, content: str | None = None
    ) -> MessageChange | None:
        """Delete (``content`` None) or edit one message, with the summaries, quotes and journal that follow."""
        async with self._db.atomic() as tx:
            await tx.serialize(JOURNAL_LOCK)
            row = await tx.fetchone(
                "SELECT id, content FROM messages WHERE thread_id = ? AND platform_message_id = ? "
                "AND deleted_utc IS NULL{for_update}",
                (thread_id, platform_message_id),
            )
            if row is None or row["content"] == content:
                return None
            message_id = int(row["id"])
            titled = await tx.fetchone(  # read before _follow_copies blanks it
                "SELECT id FROM threads WHERE id = ? AND title IS NOT NULL AND title_message_id = ?",
                (thread_id, platform_message_id),
            )
            if content is None:
                await self._blank(tx, message_ids=[message_id], now=iso(when), erase_author=False)
            else:
                await tx.execute(
                    "UPDATE messages SET content = ?, edited_utc = ? WHERE id = ?", (content, iso(when), message_id)
                )
                await self._follow_copies(tx, message_ids=[message_id])
            await tx.execute(_INVALIDATE_SUMMARIES, (thread_id, message_id))
            kind = KIND_DELETED if content is None else KIND_EDITED
            await _journal(
                tx, thread_id=thread_id, message_id=message_id, kind=kind, title_forgotten=titled is not None
            )
        await self._db.scrub()
        return MessageChange(message_id, title_forgotten=titled is not None)

    async def forget_thread(self, *, thread_id: int, now: datetime, keep_tracking: bool = False) -> int:
        """Purge a thread (messages, sessions, cards, deliveries cascade); return how many messages went.

        ``keep_tracking`` leaves a bare row under a new id (see ``storage/contract/forgetting.py``): ids are never
        reused (AUTOINCREMENT since m008 on SQLite, identities on Postgres), so the new id is above the forgotten
        one.
        """
        async with self._db.atomic() as tx:
            await tx.serialize(JOURNAL_LOCK)
            count = await tx.fetchone("SELECT COUNT(*) AS n FROM messages WHERE thread_id = ?", (thread_id,))
            key = await tx.fetchone(
                "DELETE FROM threads WHERE id = ? RETURNING platform, workspace, channel, thread", (thread_id,)
            )
            if keep_tracking and key is not None:
                await tx.execute(
                    "INSERT INTO threads (platform, workspace, channel, thread, created_utc) VALUES (?, ?, ?, ?, ?)",
                    (key["platform"], key["workspace"], key["channel"], key["thread"], iso(now)),
                )
            await _journal(tx, thread_id=thread_id, message_id=None, kind=KIND_THREAD)
        await self._db.scrub()
        return 0 if count is None else int(count["n"])

    async def forget_user(self, *, platform: str, user_id: str, now: datetime) -> list[UserErasure]:
        """Erase one person's messages (text, attachments, name and id) in every thread of ``platform``."""
        async with self._db.atomic() as tx:
            await tx.serialize(JOURNAL_LOCK)
            rows = await tx.fetchall(
                "SELECT m.id, m.thread_id, t.thread FROM messages m JOIN threads t ON t.id = m.thread_id "
                "WHERE t.platform = ? AND m.author_id = ? AND m.role = 'user' ORDER BY m.id{for_update_of_m}",
                (platform, user_id),
            )
            await self._erase_rows(tx, rows=rows, now=iso(now), erase_author=True)
            for statement in _ERASE_PERSON:
                await tx.execute(statement, (user_id, platform))
            titles = await tx.fetchall(
                "SELECT id, title FROM threads WHERE id {in_ids}",
                (self._db.dialect.array([int(row["thread_id"]) for row in rows]),),
            )  # read after the erasure: a title made from their message is gone
        await self._db.scrub()
        return group_by_thread(list(rows), titles={int(row["id"]): row["title"] for row in titles})

    async def purge_older_than(self, *, cutoff: datetime, now: datetime) -> int:
        """Delete messages sent before ``cutoff`` (never one still waiting for an answer); return the count."""
        async with self._db.atomic() as tx:
            await tx.serialize(JOURNAL_LOCK)
            rows = await tx.fetchall(
                "SELECT id, thread_id FROM messages WHERE sent_utc < ? AND "
                "(reply_state IS NULL OR reply_state != 'waiting') ORDER BY id{for_update}",
                (iso(cutoff),),
            )
            await self._erase_rows(tx, rows=rows, now=iso(now), erase_author=True)
            if rows:
                await tx.execute(
                    "DELETE FROM messages WHERE id {in_ids}", (self._db.dialect.array([int(r["id"]) for r in rows]),)
                )
        if rows:
            await self._db.scrub()
        return len(rows)

    # -- the journal ----------------------------------------------------------------------------------------

    async def latest_id(self, *, thread_id: int | None = None) -> int:
        """The newest journal id (of one thread when given), 0 when there is none."""
        if thread_id is None:
            row = await self._db.fetchone("SELECT COALESCE(MAX(id), 0) AS n FROM erasures")
        else:
            row = await self._db.fetchone(
                "SELECT COALESCE(MAX(id), 0) AS n FROM erasures WHERE thread_id = ?", (thread_id,)
            )
        return 0 if row is None else int(row["n"])

    async def since(self, *, after_id: int) -> list[Erasure]:
        """Journal rows newer than ``after_id``, oldest first."""
        rows = await self._db.fetchall(f"SELECT {_ERASURE_COLUMNS} FROM erasures WHERE id > ? ORDER BY id", (after_id,))
        return [_erasure(r) for r in rows]

    async def titles_owed(self) -> list[Erasure]:
        """Journal rows whose title was forgotten and whose rename nobody has claimed yet, oldest first."""
        rows = await self._db.fetchall(
            f"SELECT {_ERASURE_COLUMNS} FROM erasures WHERE title_forgotten = 1 AND title_renamed_by IS NULL "
            "ORDER BY id"
        )
        return [_erasure(r) for r in rows]

    async def claim_title(self, *, erasure_id: int, by: str) -> bool:
        """Take the rename a journal row owes for ``by``; False when another took it first (or none is owed)."""
        claimed = await self._db.execute(
            "UPDATE erasures SET title_renamed_by = ? "
            "WHERE id = ? AND title_forgotten = 1 AND title_renamed_by IS NULL",
            (by, erasure_id),
        )
        return claimed == 1

    async def prune_journal(self, *, before: datetime, owed_before: datetime | None = None) -> int:
        """Drop journal rows older than ``before``: running routers have long applied them. A row whose title
        rename is still owed (no router of its platform has run since) stays until ``owed_before``."""
        owed = iso(before if owed_before is None else owed_before)
        return await self._db.execute(
            "DELETE FROM erasures WHERE created_utc < ? AND (title_forgotten = 0 OR title_renamed_by IS NOT NULL "
            "OR created_utc < ?)",
            (iso(before), owed),
        )
