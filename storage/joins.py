"""ThreadJoins: a thread the bot was brought into, whose earlier messages are still to be logged before the mention.

The log orders a thread by message id (transcripts, catch-up summaries, export, what a turn answers). A mention
that brings the bot into a thread must be logged before its event is acknowledged (an acknowledged event lost
to a crash never comes again), but reading the thread's history can take longer than the platform waits for
the acknowledgement. So the join opens with ids reserved for the history (``SqlDatabase.reserve_message_ids``:
below the mention's, and below every message logged in the thread afterwards, on any worker), the mention is
logged and acknowledged, and the history is logged later under the newest of those ids: it lands before the
mention whenever it is written. The open join is a row, not process memory, so whichever worker owns the
thread, or the next start after a crash, finishes it; until then nobody answers in the thread.
"""

from __future__ import annotations

import json
from dataclasses import astuple
from datetime import datetime

from storage.leases import Fence
from storage.records import MESSAGE_COLUMNS, LoggedMessage, NewMessage, OpenJoin, iso
from storage.sql import Params, SqlDatabase


class ThreadJoins:
    """Open joins: begun with the thread's row, finished with the history's rows (see the module docstring)."""

    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def begin(
        self,
        *,
        platform: str,
        workspace: str,
        channel: str,
        thread: str,
        title: str | None,
        title_message_id: str | None,
        before_message_id: str,
        room: int,
        now: datetime,
        replied_to: str | None = None,
    ) -> int | None:
        """Make the thread's row with an open join holding ``room`` reserved ids; its id, or None when the thread
        had a row already (someone else brought the bot in first: nothing is owed by this call). ``replied_to``:
        the message whose reply chain is the history, for a mention that starts its own thread."""
        reserved = await self._db.reserve_message_ids(room)
        async with self._db.atomic() as tx:
            row = await tx.fetchone(
                "INSERT INTO threads (platform, workspace, channel, thread, title, title_message_id, created_utc) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
                (platform, workspace, channel, thread, title, title_message_id if title else None, iso(now)),
            )
            if row is None:
                return None
            thread_id = int(row["id"])
            await tx.execute(
                "INSERT INTO thread_joins (thread_id, before_message_id, replied_to, reserved_ids_json, started_utc) "
                "VALUES (?, ?, ?, ?, ?)",
                (thread_id, before_message_id, replied_to, json.dumps(reserved), iso(now)),
            )
        return thread_id

    async def open_join(self, *, thread_id: int) -> OpenJoin | None:
        row = await self._db.fetchone(
            "SELECT before_message_id, replied_to, reserved_ids_json FROM thread_joins WHERE thread_id = ?",
            (thread_id,),
        )
        if row is None:
            return None
        reserved = tuple(json.loads(row["reserved_ids_json"]))
        replied_to = None if row["replied_to"] is None else str(row["replied_to"])
        return OpenJoin(thread_id, str(row["before_message_id"]), reserved, replied_to)

    async def finish(
        self, *, join: OpenJoin, history: list[NewMessage], fence: Fence | None = None
    ) -> list[LoggedMessage]:
        """Log ``history`` (oldest first, at most as many as were reserved) under the newest reserved ids and close
        the join, in one transaction; the rows logged. A message logged already (delivered while the join was
        open) keeps its row. Only the thread's owner (``fence``) may finish it."""
        kept = history[-len(join.reserved_ids) :] if join.reserved_ids else []
        ids = join.reserved_ids[len(join.reserved_ids) - len(kept) :]
        insert = (
            "INSERT INTO messages (id, thread_id, platform_message_id, author_id, author_name, role, content, "
            "attachments_json, reply_state, sent_utc, logged_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            f"ON CONFLICT DO NOTHING RETURNING {MESSAGE_COLUMNS}"
        )
        statements: list[tuple[str, Params]] = [
            (insert, (message_id, *astuple(m)))  # NewMessage's fields are the columns after the id, in order
            for message_id, m in zip(ids, kept, strict=True)
        ]
        statements.append(("DELETE FROM thread_joins WHERE thread_id = ?", (join.thread_id,)))
        rows = await self._db.script(statements, fence=fence)
        return [LoggedMessage.from_row(row) for row in rows[:-1] if row is not None]
