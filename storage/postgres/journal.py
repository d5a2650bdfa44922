"""The turn journal on Postgres (the contract and the SQL of storage/journal.py, with Postgres' placeholders)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from storage import journal
from storage.postgres.db import PostgresDatabase
from storage.records import JournalStep, iso


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


OPEN_STEP, OPEN_CALL, SET_STATE = _pg(journal.OPEN_STEP), _pg(journal.OPEN_CALL), _pg(journal.SET_STATE)
SET_WAITING = _pg(journal.SET_WAITING)
FINISH, OPEN_TURN, CLOSE_TURN = _pg(journal.FINISH), _pg(journal.OPEN_TURN), _pg(journal.CLOSE_TURN)


class PostgresTurnJournal:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def open_step(
        self,
        *,
        thread_id: int,
        after_message_id: int,
        text: str,
        calls: Sequence[tuple[str, str, str]],
        now: datetime,
        running: str | None = None,
    ) -> int:
        async with self._db.transaction() as connection:
            cursor = await connection.execute(OPEN_STEP, (thread_id, after_message_id, text, iso(now)))
            row = await cursor.fetchone()
            assert row is not None
            step_id = int(row["id"])  # type: ignore[call-overload]
            rows = journal.call_rows(
                thread_id=thread_id, after_message_id=after_message_id, step_id=step_id, calls=calls, now=now
            )
            async with connection.cursor() as many:
                await many.executemany(OPEN_CALL, rows)
            if running is not None:
                await connection.execute(SET_STATE, ("running", step_id, running))
        return step_id

    async def set_state(self, *, step_id: int, call_id: str, state: str) -> None:
        await self._db.execute(SET_STATE, (state, step_id, call_id))

    async def set_waiting(self, *, step_id: int, call_id: str, approval_id: int) -> None:
        await self._db.execute(SET_WAITING, (approval_id, step_id, call_id))

    async def finish(
        self,
        *,
        step_id: int,
        call_id: str,
        state: str,
        result: str,
        is_error: bool,
        duration_ms: int,
        approval: str,
        decided_by: str | None,
        cites: tuple[int, ...],
    ) -> None:
        params = journal.finish_params(
            step_id=step_id,
            call_id=call_id,
            state=state,
            result=result,
            is_error=is_error,
            duration_ms=duration_ms,
            approval=approval,
            decided_by=decided_by,
            cites=cites,
        )
        await self._db.execute(FINISH, params)

    async def open_turn(self, *, thread_id: int) -> list[JournalStep]:
        return journal.steps_of(await self._db.fetchall(OPEN_TURN, (thread_id,)))

    async def close_turn(self, *, thread_id: int, now: datetime) -> int:
        return await self._db.execute(CLOSE_TURN, (iso(now), thread_id))
