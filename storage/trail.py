"""The tool trail and tool approvals: what the agent did in a thread, and who allowed it.

Every tool call is logged with its arguments, an excerpt of its result, its duration and its approval, placed
after the last message the thread had when it ran, so the export and the catch-up transcript show it where it
happened. ``cites`` holds the log ids a result quoted (search_thread), so forgetting a message also removes
its quotes from the trail (``storage/erasure.py``).

Approval cards follow the catch-up card's rules: the state is here, and the first decision wins through a
conditional UPDATE. A process that restarts cannot resume a waiting tool call, so pending approvals of an
earlier run are marked expired at start-up.
"""

from __future__ import annotations

import json
from datetime import datetime

from storage.records import ApprovalRecord, TrailEntry, iso, record_from_row, trail_from_row
from storage.sql import SqlDatabase

_TRAIL_COLUMNS = (
    "id, thread_id, after_message_id, call_id, tool, arguments_json, result_excerpt, is_error, duration_ms, "
    "approval, decided_by, cites_json, created_utc, state"
)
_APPROVAL_COLUMNS = (
    "id, thread_id, tool, arguments_preview, state, card_message_id, decided_by_name, created_utc, "
    "{now_s} - asked_epoch_s AS age_s"
)


class ToolTrail:
    def __init__(self, db: SqlDatabase) -> None:
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
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        """Trail entries placed after a message in (``after_id``, ``through_id``], in order."""
        rows = await self._db.fetchall(
            f"SELECT {_TRAIL_COLUMNS} FROM tool_calls WHERE thread_id = ? AND after_message_id > ? "
            "AND after_message_id <= ? ORDER BY after_message_id, id",
            (thread_id, after_id, through_id if through_id is not None else 2**62),
        )
        return [trail_from_row(row) for row in rows]


class ApprovalStore:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def open(self, *, thread_id: int, tool: str, arguments_preview: str, now: datetime) -> int:
        row = await self._db.fetchone(
            "INSERT INTO approvals (thread_id, tool, arguments_preview, state, created_utc, asked_epoch_s) "
            "VALUES (?, ?, ?, 'pending', ?, {now_s}) RETURNING id",
            (thread_id, tool, arguments_preview, iso(now)),
        )
        assert row is not None
        return int(row["id"])

    async def set_message_id(self, *, approval_id: int, card_message_id: str) -> None:
        await self._db.execute("UPDATE approvals SET card_message_id = ? WHERE id = ?", (card_message_id, approval_id))

    async def decide(
        self,
        *,
        approval_id: int,
        state: str,
        by_id: str | None,
        by_name: str | None,
        now: datetime,
        within_s: float | None = None,
    ) -> bool:
        """Move a pending approval to ``state``; False when it was decided (or expired) already.

        ``within_s``: only if it was asked for less than that many seconds ago by the database's clock (its
        timeout, decided in the same statement, so no worker's clock and no race with the deadline matter)."""
        if within_s is None:
            changed = await self._db.execute(
                "UPDATE approvals SET state = ?, decided_by_id = ?, decided_by_name = ?, decided_utc = ? "
                "WHERE id = ? AND state = 'pending'",
                (state, by_id, by_name, iso(now), approval_id),
            )
        else:
            changed = await self._db.execute(
                "UPDATE approvals SET state = ?, decided_by_id = ?, decided_by_name = ?, decided_utc = ? "
                "WHERE id = ? AND state = 'pending' AND (asked_epoch_s IS NULL OR {now_s} - asked_epoch_s < ?)",
                (state, by_id, by_name, iso(now), approval_id, within_s),
            )
        return changed == 1

    async def get(self, *, approval_id: int) -> ApprovalRecord | None:
        row = await self._db.fetchone(f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE id = ?", (approval_id,))
        return None if row is None else record_from_row(ApprovalRecord, row)

    async def expire_pending(self, *, now: datetime) -> int:
        """An earlier run's waiting calls died with it: their cards are stale. Returns how many."""
        return await self._db.execute(
            "UPDATE approvals SET state = 'expired', decided_utc = ? WHERE state = 'pending'", (iso(now),)
        )
