"""What the turn journal costs a tool step, counted in commits (P7's budget, docs/PERFORMANCE.md), and what it
still promises: a side-effecting call's ``running`` row is committed before the call is sent; a read-only call,
which a restart runs again anyway, writes its step with its result in one commit, as the trail did before the
journal. Counted on the real stores over SQLite and Postgres, through the real ToolBox.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from agent.tools import ToolBox, ToolCall, ToolOutput, ToolSpec
from bots.tools.journal import TurnRecord
from storage.backends import Storage, open_storage
from storage.journal import TurnJournal
from storage.sql import Params, SqlDatabase, Transaction
from tests.storage_contract.conftest import NOW, new_thread, say

LOOKUP = ToolSpec("fake__lookup", "Look up.", {"type": "object"}, read_only=True)
TICKET = ToolSpec("fake__create_ticket", "File a ticket.", {"type": "object"}, read_only=False, approval="never")


class CountingDatabase:
    """The real database, counting the transactions the journal commits (one per atomic() or lone execute())."""

    def __init__(self, db: SqlDatabase) -> None:
        self._db = db
        self.dialect = db.dialect
        self.commits = 0

    @asynccontextmanager
    async def atomic(self) -> AsyncIterator[Transaction]:
        async with self._db.atomic() as tx:
            yield tx
        self.commits += 1

    async def execute(self, sql: str, params: Params = ()) -> int:
        self.commits += 1
        return await self._db.execute(sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> Any:
        return await self._db.fetchall(sql, params)


class Provider:
    """Both tools; each call reads the journal first, to see what was committed before it was sent."""

    def __init__(self, storage: Storage, thread_id: int) -> None:
        self._storage, self._thread_id = storage, thread_id
        self.seen: list[list[tuple[str, str]]] = []

    def specs(self) -> list[ToolSpec]:
        return [LOOKUP, TICKET]

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolOutput:
        steps = await self._storage.journal.open_turn(thread_id=self._thread_id)
        self.seen.append([(c.tool, c.state) for s in steps for c in s.calls])
        return ToolOutput(f"{name} ok")


@pytest.fixture(params=["sqlite", "postgres"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    url = f"sqlite:///{tmp_path}/bot.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    async with open_storage(url) as opened:
        yield opened


async def one_step(storage: Storage, spec: ToolSpec) -> tuple[int, list[list[tuple[str, str]]]]:
    """One tool step of one call to ``spec``: the commits it cost, and the journal its call saw when sent."""
    thread_id = await new_thread(storage, f"t-{spec.name}")
    question = await say(storage, thread_id, "m1", "go")
    counting = CountingDatabase(storage.database)  # type: ignore[arg-type]
    provider = Provider(storage, thread_id)
    record = TurnRecord(
        store=TurnJournal(counting),  # type: ignore[arg-type]
        thread_id=thread_id,
        after_message_id=question,
        clock=lambda: NOW,
        read_only=frozenset({LOOKUP.name}),
    )
    call = ToolCall.from_raw(id="c1", name=spec.name, raw_arguments="{}")
    await record.step(text="", calls=[call])
    result = await ToolBox([provider]).execute(call, approve=None, on_start=record.running)
    await record.ended(result, approval="not_needed")
    [step] = await storage.journal.open_turn(thread_id=thread_id)
    assert [(c.tool, c.state, c.result) for c in step.calls] == [(spec.name, "done", f"{spec.name} ok")]
    return counting.commits, provider.seen


async def test_a_read_only_call_costs_its_step_one_commit(storage: Storage) -> None:
    commits, seen = await one_step(storage, LOOKUP)
    assert commits == 1  # the step and its result together, after the call: a restart runs it again anyway
    assert seen == [[]]


async def test_a_side_effecting_call_is_committed_running_before_it_is_sent_and_done_after(storage: Storage) -> None:
    commits, seen = await one_step(storage, TICKET)
    assert seen == [[("fake__create_ticket", "running")]]  # requested and running in the one commit before it
    assert commits == 2
