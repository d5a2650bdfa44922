"""Sessions, "Where were we?" cards and platform deliveries: the durable side of the orphan flow.

Live sessions are in memory; what must survive a restart is here: which summary seeded which session (and the
last message it covers, so the next catch-up can be incremental), every card with its state, and which
platform deliveries were already handled. A card click wins through a conditional UPDATE, so two clicks in two
processes, or in one process before and after a restart, can never both win (on Postgres the second click
waits on the row lock, then finds the state no longer 'pending'). A second card for the same orphaning is
impossible through the partial unique index.
"""

from __future__ import annotations

from datetime import datetime

from storage.leases import Fence
from storage.records import CardRecord, StoredSummary, iso, record_from_row
from storage.sql import SqlDatabase

_CARD_COLUMNS = "id, thread_id, card_message_id, state, resolved_by_name"
_NO_ERASURE_SINCE = "NOT EXISTS (SELECT 1 FROM erasures WHERE thread_id = ? AND id > ?)"


class SessionStore:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def record(
        self,
        *,
        thread_id: int,
        origin: str,
        model: str,
        started_utc: datetime,
        summary: str | None = None,
        summary_through_message_id: int | None = None,
    ) -> int:
        row = await self._db.fetchone(
            "INSERT INTO sessions (thread_id, origin, model, started_utc, summary, summary_through_message_id) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (thread_id, origin, model, iso(started_utc), summary, summary_through_message_id),
        )
        assert row is not None
        return int(row["id"])

    async def record_with_summary(
        self,
        *,
        thread_id: int,
        model: str,
        started_utc: datetime,
        summary: str,
        summary_through_message_id: int,
        erasures_seen: int,
    ) -> int | None:
        """Record a caught-up session unless the thread forgot something after ``erasures_seen``; None if so.

        The summary was written from the log as it was when journal id ``erasures_seen`` was the thread's latest.
        A deletion since then (in this process or another) may be in it, so it must not be stored: the caller
        summarizes again.
        """
        row = await self._db.fetchone(
            "INSERT INTO sessions (thread_id, origin, model, started_utc, summary, summary_through_message_id) "
            f"SELECT ?, 'catch_up', ?, ?, ?, ? WHERE {_NO_ERASURE_SINCE} RETURNING id",
            (thread_id, model, iso(started_utc), summary, summary_through_message_id, thread_id, erasures_seen),
        )
        return None if row is None else int(row["id"])

    async def replace_summary(
        self, *, session_id: int, thread_id: int, summary: str | None, through_message_id: int, erasures_seen: int
    ) -> bool:
        """Store a live session's rebuilt seed summary, under the same condition as ``record_with_summary``."""
        changed = await self._db.execute(
            f"UPDATE sessions SET summary = ?, summary_through_message_id = ? WHERE id = ? AND {_NO_ERASURE_SINCE}",
            (summary, through_message_id if summary else None, session_id, thread_id, erasures_seen),
        )
        return changed == 1

    async def latest_summary(self, *, thread_id: int) -> StoredSummary | None:
        """The most recent catch-up summary of the thread whose covered message still exists."""
        row = await self._db.fetchone(
            "SELECT summary, summary_through_message_id FROM sessions WHERE thread_id = ? "
            "AND summary IS NOT NULL AND summary_through_message_id IS NOT NULL ORDER BY id DESC LIMIT 1",
            (thread_id,),
        )
        if row is None:
            return None
        return StoredSummary(text=row["summary"], through_message_id=int(row["summary_through_message_id"]))


class CardStore:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def open_card(self, *, thread_id: int, now: datetime, fence: Fence | None = None) -> tuple[CardRecord, bool]:
        """The thread's open card, creating a pending one if there is none; True when created now.

        With several workers only the thread's owner (``fence``) posts its card, and finishes it (:meth:`finish`).
        """
        async with self._db.atomic() as tx:
            await tx.check_fence(fence)
            created = await tx.fetchone(
                "INSERT INTO cards (thread_id, state, created_utc) VALUES (?, 'pending', ?) ON CONFLICT DO NOTHING "
                "RETURNING id",
                (thread_id, iso(now)),
            )
        card = await self.open_card_for(thread_id=thread_id)
        assert card is not None
        return card, created is not None

    async def open_card_for(self, *, thread_id: int) -> CardRecord | None:
        row = await self._db.fetchone(
            f"SELECT {_CARD_COLUMNS} FROM cards WHERE thread_id = ? AND state IN ('pending', 'catching_up')",
            (thread_id,),
        )
        return None if row is None else record_from_row(CardRecord, row)

    async def get(self, *, card_id: int) -> CardRecord | None:
        row = await self._db.fetchone(f"SELECT {_CARD_COLUMNS} FROM cards WHERE id = ?", (card_id,))
        return None if row is None else record_from_row(CardRecord, row)

    async def set_message_id(self, *, card_id: int, card_message_id: str) -> None:
        await self._db.execute("UPDATE cards SET card_message_id = ? WHERE id = ?", (card_message_id, card_id))

    async def claim(self, *, card_id: int, state: str, by_id: str, by_name: str, now: datetime) -> bool:
        """Move a pending card to ``state`` for this user; False when someone else got there first."""
        changed = await self._db.execute(
            "UPDATE cards SET state = ?, resolved_by_id = ?, resolved_by_name = ?, resolved_utc = ? "
            "WHERE id = ? AND state = 'pending'",
            (state, by_id, by_name, iso(now), card_id),
        )
        return changed == 1

    async def finish(self, *, card_id: int, state: str, now: datetime, fence: Fence | None = None) -> None:
        async with self._db.atomic() as tx:
            await tx.check_fence(fence)
            await tx.execute("UPDATE cards SET state = ?, resolved_utc = ? WHERE id = ?", (state, iso(now), card_id))

    async def discard(self, *, card_id: int) -> None:
        """Forget a card that could not be posted, so the next message posts a new one."""
        await self._db.execute("DELETE FROM cards WHERE id = ?", (card_id,))

    async def reopen(self, *, card_id: int) -> None:
        """Back to pending (the catch-up failed): the buttons work again."""
        await self._db.execute(
            "UPDATE cards SET state = 'pending', resolved_by_id = NULL, resolved_by_name = NULL, "
            "resolved_utc = NULL WHERE id = ?",
            (card_id,),
        )

    async def reopen_interrupted(self) -> list[CardRecord]:
        """Cards left 'catching_up' by a process that died mid-summary become clickable again; returns them."""
        async with self._db.atomic() as tx:
            rows = await tx.fetchall(
                f"SELECT {_CARD_COLUMNS} FROM cards WHERE state = 'catching_up' ORDER BY id{{for_update}}"
            )
            if rows:
                await tx.execute(
                    "UPDATE cards SET state = 'pending', resolved_by_id = NULL, resolved_by_name = NULL, "
                    "resolved_utc = NULL WHERE id {in_ids}",
                    (self._db.dialect.array([int(row["id"]) for row in rows]),),
                )
        return [record_from_row(CardRecord, row) for row in rows]


class DeliveredEvents:
    """Platform delivery ids (Slack event_id) and whether the work they asked for was done."""

    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def record(self, *, platform: str, event_key: str, message_id: int, now: datetime) -> bool:
        """Remember a delivery; True when it was handled already (a redelivery to drop)."""
        await self._db.execute(
            "INSERT INTO delivered_events (platform, event_key, message_id, received_utc) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (platform, event_key, message_id, iso(now)),
        )
        row = await self._db.fetchone(
            "SELECT handled_utc FROM delivered_events WHERE platform = ? AND event_key = ?", (platform, event_key)
        )
        return row is not None and row["handled_utc"] is not None

    async def prune(self, *, received_before: datetime) -> int:
        """Forget deliveries received before ``received_before`` whose work is done; return how many.

        A delivery id only matters while the platform may redeliver it (Slack retries for about an hour), so
        the rows go once they are well past that and handled, or their message no longer waits for an answer.
        One whose message still waits stays: it is what an answer in progress marks handled.
        """
        return await self._db.execute(
            "DELETE FROM delivered_events WHERE received_utc < ? AND (handled_utc IS NOT NULL OR NOT EXISTS "
            "(SELECT 1 FROM messages WHERE messages.id = delivered_events.message_id "
            "AND messages.reply_state = 'waiting'))",
            (iso(received_before),),
        )

    async def mark_handled(self, *, message_ids: list[int], now: datetime) -> None:
        if message_ids:
            await self._db.execute(
                "UPDATE delivered_events SET handled_utc = ? WHERE message_id {in_ids} AND handled_utc IS NULL",
                (iso(now), self._db.dialect.array(message_ids)),
            )
