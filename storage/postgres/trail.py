"""The tool trail and tool approvals on Postgres (the contract of storage/trail.py)."""

from __future__ import annotations

import json
from datetime import datetime

from storage.postgres.db import PostgresDatabase
from storage.records import ApprovalRecord, TrailEntry, approval_from_row, iso, trail_from_row

_APPROVAL_COLUMNS = "id, thread_id, tool, arguments_preview, state, card_message_id, decided_by_name, created_utc"


class PostgresToolTrail:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def record(
        self,
        *,
        thread_id: int,
        after_message_id: int,
        call_id: str,
        tool: str,
        arguments: dict[str, object],
        result_excerpt: str,
        is_error: bool,
        duration_ms: int,
        approval: str,
        decided_by: str | None,
        cites: tuple[int, ...],
        now: datetime,
    ) -> None:
        await self._db.execute(
            "INSERT INTO tool_calls (thread_id, after_message_id, call_id, tool, arguments_json, result_excerpt, "
            "is_error, duration_ms, approval, decided_by, cites_json, created_utc) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                thread_id,
                after_message_id,
                call_id,
                tool,
                json.dumps(arguments, ensure_ascii=False, sort_keys=True),
                result_excerpt,
                int(is_error),
                duration_ms,
                approval,
                decided_by,
                json.dumps(list(cites)),
                iso(now),
            ),
        )

    async def for_thread(self, *, thread_id: int, after_id: int = 0, through_id: int | None = None) -> list[TrailEntry]:
        rows = await self._db.fetchall(
            "SELECT * FROM tool_calls WHERE thread_id = %s AND after_message_id > %s AND after_message_id <= %s "
            "ORDER BY after_message_id, id",
            (thread_id, after_id, through_id if through_id is not None else 2**62),
        )
        return [trail_from_row(row) for row in rows]


class PostgresApprovalStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def open(self, *, thread_id: int, tool: str, arguments_preview: str, now: datetime) -> int:
        approval_id = await self._db.insert(
            "INSERT INTO approvals (thread_id, tool, arguments_preview, state, created_utc) "
            "VALUES (%s, %s, %s, 'pending', %s) RETURNING id",
            (thread_id, tool, arguments_preview, iso(now)),
        )
        assert approval_id is not None
        return approval_id

    async def set_message_id(self, *, approval_id: int, card_message_id: str) -> None:
        await self._db.execute(
            "UPDATE approvals SET card_message_id = %s WHERE id = %s", (card_message_id, approval_id)
        )

    async def decide(
        self, *, approval_id: int, state: str, by_id: str | None, by_name: str | None, now: datetime
    ) -> bool:
        changed = await self._db.execute(
            "UPDATE approvals SET state = %s, decided_by_id = %s, decided_by_name = %s, decided_utc = %s "
            "WHERE id = %s AND state = 'pending'",
            (state, by_id, by_name, iso(now), approval_id),
        )
        return changed == 1

    async def get(self, *, approval_id: int) -> ApprovalRecord | None:
        row = await self._db.fetchone(f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE id = %s", (approval_id,))
        return None if row is None else approval_from_row(row)

    async def expire_pending(self, *, now: datetime) -> int:
        return await self._db.execute(
            "UPDATE approvals SET state = 'expired', decided_utc = %s WHERE state = 'pending'", (iso(now),)
        )
