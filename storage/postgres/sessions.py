"""Sessions, "Where were we?" cards and platform deliveries on Postgres (the contract of storage/sessions.py).

A card click wins through the same conditional UPDATE; on Postgres two workers' clicks on one card serialize on
the row lock, and the second finds the state no longer 'pending'. A second card for the same orphaning is
impossible through the same partial unique index.
"""

from __future__ import annotations

from datetime import datetime

from storage.leases import Fence
from storage.postgres.db import PostgresDatabase
from storage.postgres.leases import check_fence
from storage.records import CardRecord, StoredSummary, card_from_row, iso

_CARD_COLUMNS = "id, thread_id, card_message_id, state, resolved_by_name"
_NO_ERASURE_SINCE = "NOT EXISTS (SELECT 1 FROM erasures WHERE thread_id = %s AND id > %s)"


class PostgresSessionStore:
    def __init__(self, db: PostgresDatabase) -> None:
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
        session_id = await self._db.insert(
            "INSERT INTO sessions (thread_id, origin, model, started_utc, summary, summary_through_message_id) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (thread_id, origin, model, iso(started_utc), summary, summary_through_message_id),
        )
        assert session_id is not None
        return session_id

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
        return await self._db.insert(
            "INSERT INTO sessions (thread_id, origin, model, started_utc, summary, summary_through_message_id) "
            f"SELECT %s, 'catch_up', %s, %s, %s, %s WHERE {_NO_ERASURE_SINCE} RETURNING id",
            (thread_id, model, iso(started_utc), summary, summary_through_message_id, thread_id, erasures_seen),
        )

    async def replace_summary(
        self, *, session_id: int, thread_id: int, summary: str | None, through_message_id: int, erasures_seen: int
    ) -> bool:
        changed = await self._db.execute(
            f"UPDATE sessions SET summary = %s, summary_through_message_id = %s WHERE id = %s AND {_NO_ERASURE_SINCE}",
            (summary, through_message_id if summary else None, session_id, thread_id, erasures_seen),
        )
        return changed == 1

    async def latest_summary(self, *, thread_id: int) -> StoredSummary | None:
        row = await self._db.fetchone(
            "SELECT summary, summary_through_message_id FROM sessions WHERE thread_id = %s "
            "AND summary IS NOT NULL AND summary_through_message_id IS NOT NULL ORDER BY id DESC LIMIT 1",
            (thread_id,),
        )
        if row is None:
            return None
        return StoredSummary(text=row["summary"], through_message_id=int(row["summary_through_message_id"]))


class PostgresCardStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def open_card(self, *, thread_id: int, now: datetime, fence: Fence | None = None) -> tuple[CardRecord, bool]:
        async with self._db.transaction() as connection:
            await check_fence(connection, fence)  # only the thread's owner posts its card
            cursor = await connection.execute(
                "INSERT INTO cards (thread_id, state, created_utc) VALUES (%s, 'pending', %s) "
                "ON CONFLICT DO NOTHING RETURNING id",
                (thread_id, iso(now)),
            )
            created = await cursor.fetchone()
        card = await self.open_card_for(thread_id=thread_id)
        assert card is not None
        return card, created is not None

    async def open_card_for(self, *, thread_id: int) -> CardRecord | None:
        row = await self._db.fetchone(
            f"SELECT {_CARD_COLUMNS} FROM cards WHERE thread_id = %s AND state IN ('pending', 'catching_up')",
            (thread_id,),
        )
        return None if row is None else card_from_row(row)

    async def get(self, *, card_id: int) -> CardRecord | None:
        row = await self._db.fetchone(f"SELECT {_CARD_COLUMNS} FROM cards WHERE id = %s", (card_id,))
        return None if row is None else card_from_row(row)

    async def set_message_id(self, *, card_id: int, card_message_id: str) -> None:
        await self._db.execute("UPDATE cards SET card_message_id = %s WHERE id = %s", (card_message_id, card_id))

    async def claim(self, *, card_id: int, state: str, by_id: str, by_name: str, now: datetime) -> bool:
        changed = await self._db.execute(
            "UPDATE cards SET state = %s, resolved_by_id = %s, resolved_by_name = %s, resolved_utc = %s "
            "WHERE id = %s AND state = 'pending'",
            (state, by_id, by_name, iso(now), card_id),
        )
        return changed == 1

    async def finish(self, *, card_id: int, state: str, now: datetime, fence: Fence | None = None) -> None:
        async with self._db.transaction() as connection:
            await check_fence(connection, fence)  # only the thread's owner finishes what its card chose
            await connection.execute(
                "UPDATE cards SET state = %s, resolved_utc = %s WHERE id = %s", (state, iso(now), card_id)
            )

    async def discard(self, *, card_id: int) -> None:
        await self._db.execute("DELETE FROM cards WHERE id = %s", (card_id,))

    async def reopen(self, *, card_id: int) -> None:
        await self._db.execute(
            "UPDATE cards SET state = 'pending', resolved_by_id = NULL, resolved_by_name = NULL, "
            "resolved_utc = NULL WHERE id = %s",
            (card_id,),
        )

    async def reopen_interrupted(self) -> list[CardRecord]:
        """Cards left 'catching_up' become clickable again; the rows as they were before the reset."""
        rows = await self._db.fetchall(
            "UPDATE cards SET state = 'pending', resolved_by_id = NULL, resolved_by_name = NULL, resolved_utc = NULL "
            "FROM (SELECT id, resolved_by_name FROM cards WHERE state = 'catching_up' FOR UPDATE) AS before "
            "WHERE cards.id = before.id RETURNING cards.id, cards.thread_id, cards.card_message_id, "
            "'catching_up' AS state, before.resolved_by_name"
        )
        return [card_from_row(row) for row in rows]


class PostgresDeliveredEvents:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def record(self, *, platform: str, event_key: str, message_id: int, now: datetime) -> bool:
        async with self._db.transaction() as connection:
            await connection.execute(
                "INSERT INTO delivered_events (platform, event_key, message_id, received_utc) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (platform, event_key, message_id, iso(now)),
            )
            cursor = await connection.execute(
                "SELECT handled_utc FROM delivered_events WHERE platform = %s AND event_key = %s",
                (platform, event_key),
            )
            row = await cursor.fetchone()
        return row is not None and row["handled_utc"] is not None

    async def prune(self, *, received_before: datetime) -> int:
        return await self._db.execute(
            "DELETE FROM delivered_events WHERE received_utc < %s AND (handled_utc IS NOT NULL OR NOT EXISTS "
            "(SELECT 1 FROM messages WHERE messages.id = delivered_events.message_id "
            "AND messages.reply_state = 'waiting'))",
            (iso(received_before),),
        )

    async def mark_handled(self, *, message_ids: list[int], now: datetime) -> None:
        if message_ids:
            await self._db.execute(
                "UPDATE delivered_events SET handled_utc = %s WHERE message_id = ANY(%s) AND handled_utc IS NULL",
                (iso(now), message_ids),
            )
