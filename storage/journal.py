"""The turn journal: a tool turn's steps and each call's state, written as they happen, so a turn cut short by a
restart resumes where it stopped instead of running its calls again.

The trail *is* the journal's call half: a call's ``tool_calls`` row is inserted, with the model step that asked
for it (``turn_steps``), in one transaction before any of the step's calls runs, in state ``requested``. It
moves to ``waiting`` (an approval card is up), ``allowed``, ``running`` (committed before the call is sent to
its server) and ends ``done``, ``failed``, ``denied`` or ``expired`` with the result as the model saw it. So the
export, forgetting (``storage/erasure.py``) and ``forget`` reach the journal exactly as they reach the trail.
A turn is *open* until its answer is logged or it is dropped (Start fresh): :meth:`TurnJournal.close_turn`.

One class for both backends (``storage/sql.py``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from storage.records import CallEnd, JournalCall, JournalStep, iso
from storage.sql import SqlDatabase

OPEN_STEP = "INSERT INTO turn_steps (thread_id, after_message_id, text, created_utc) VALUES (?, ?, ?, ?) RETURNING id"
OPEN_CALL = (
    "INSERT INTO tool_calls (thread_id, after_message_id, call_id, tool, arguments_json, result_excerpt, is_error, "
    "duration_ms, approval, decided_by, cites_json, created_utc, step_id, state) "
    "VALUES (?, ?, ?, ?, ?, '', 0, 0, 'not_needed', NULL, '[]', ?, ?, ?)"
)
SET_STATE = "UPDATE tool_calls SET state = ? WHERE step_id = ? AND call_id = ?"
SET_WAITING = "UPDATE tool_calls SET state = 'waiting', approval_id = ? WHERE step_id = ? AND call_id = ?"
FINISH = (
    "UPDATE tool_calls SET state = ?, result_excerpt = ?, is_error = ?, duration_ms = ?, approval = ?, "
    "decided_by = ?, cites_json = ? WHERE step_id = ? AND call_id = ?"
)
OPEN_TURN = (
    "SELECT s.id AS step_id, s.after_message_id, s.text, c.call_id, c.tool, c.arguments_json, c.state, "
    "c.result_excerpt, c.is_error, c.decided_by, c.approval_id FROM turn_steps s JOIN tool_calls c ON c.step_id = s.id "
    "WHERE s.thread_id = ? AND s.closed_utc IS NULL ORDER BY s.id, c.id"
)
CLOSE_TURN = "UPDATE turn_steps SET closed_utc = ? WHERE thread_id = ? AND closed_utc IS NULL"


def call_rows(
    *,
    thread_id: int,
    after_message_id: int,
    step_id: int,
    calls: Sequence[tuple[str, str, str]],
    now: datetime,
    running: str | None = None,
) -> list[tuple[Any, ...]]:
    """The OPEN_CALL parameters of a step's ``(call_id, tool, arguments_json)`` calls: ``requested``, but the one
    ``running`` names, inserted as running (no UPDATE, no round trip more)."""
    stamp = iso(now)
    return [
        (thread_id, after_message_id, c, t, a, stamp, step_id, "running" if c == running else "requested")
        for c, t, a in calls
    ]


def _finish_params(step_id: int, end: CallEnd) -> tuple[Any, ...]:
    cites = json.dumps(list(end.cites))
    return (end.state, end.result, int(end.is_error), end.duration_ms, end.approval, end.decided_by, cites, step_id,
            end.call_id)  # fmt: skip


def steps_of(rows: Sequence[Any]) -> list[JournalStep]:
    """OPEN_TURN's rows, one per call, as steps in order."""
    steps: dict[int, JournalStep] = {}
    for row in rows:
        call = JournalCall(
            call_id=row["call_id"],
            tool=row["tool"],
            arguments_json=row["arguments_json"],
            state=row["state"],
            result=row["result_excerpt"],
            is_error=bool(row["is_error"]),
            decided_by=row["decided_by"],
            approval_id=None if row["approval_id"] is None else int(row["approval_id"]),
        )
        step_id = int(row["step_id"])
        if (step := steps.get(step_id)) is None:
            steps[step_id] = JournalStep(step_id, int(row["after_message_id"]), row["text"], (call,))
        else:
            steps[step_id] = JournalStep(step.id, step.after_message_id, step.text, (*step.calls, call))
    return list(steps.values())


class TurnJournal:
    def __init__(self, db: SqlDatabase) -> None:
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
        ended: CallEnd | None = None,
    ) -> int:
        """Record a step and its ``(call_id, tool, arguments_json)`` calls as requested, the call ``running``
        names as running, and the call ``ended`` says as ended, in one transaction."""

        async with self._db.atomic() as tx:
            row = await tx.fetchone(OPEN_STEP, (thread_id, after_message_id, text, iso(now)))
            assert row is not None
            step_id = int(row["id"])
            rows = call_rows(
                thread_id=thread_id,
                after_message_id=after_message_id,
                step_id=step_id,
                calls=calls,
                now=now,
                running=running,
            )
            await tx.executemany(OPEN_CALL, rows)
            if ended is not None:
                await tx.execute(FINISH, _finish_params(step_id, ended))
        return step_id

    async def set_state(self, *, step_id: int, call_id: str, state: str) -> None:
        """Move a call to ``allowed`` or ``running`` (committed when this returns)."""
        await self._db.execute(SET_STATE, (state, step_id, call_id))

    async def set_waiting(self, *, step_id: int, call_id: str, approval_id: int) -> None:
        """The call waits on approval card ``approval_id`` (which outlives the process)."""
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
        """End a call: ``done``, ``failed``, ``denied`` or ``expired``, with its result as the model saw it."""
        end = CallEnd(call_id, state, result, is_error, duration_ms, approval, decided_by, cites)
        await self._db.execute(FINISH, _finish_params(step_id, end))

    async def open_turn(self, *, thread_id: int) -> list[JournalStep]:
        """The steps of the thread's open (interrupted or running) turn, oldest first; empty when none."""
        return steps_of(await self._db.fetchall(OPEN_TURN, (thread_id,)))

    async def close_turn(self, *, thread_id: int, now: datetime) -> int:
        """The thread's open turn ended (answered, or dropped): its steps stay in the log. Returns how many."""
        return await self._db.execute(CLOSE_TURN, (iso(now), thread_id))
