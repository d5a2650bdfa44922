"""The turn journal of one thread's turn: the agent's journal port written to the log, and an interrupted turn
read back from it.

:class:`TurnRecord` is what ``AgentSession.turn`` reports to (``agent/journal.py``): each step with its calls is
recorded as ``requested`` before any runs, a call that waits for a card is ``waiting`` and then ``allowed``, a
call is ``running`` (committed) before it is sent to its server, and it ends ``done``, ``failed``, ``denied`` or
``expired`` with its result as the model saw it (the turn's ``on_result``). ``storage/journal.py`` says where.

:func:`resumed_steps` turns the interrupted turn back into what the session replays: a call that ended is
replayed from its row and never run again; one that had not started runs now (an ``allowed`` one without a
second card; one that waited on an approval card waits on that same card, which outlived the process, and its
decision, if made meanwhile, applies at once); a read-only call that was running runs again; any other call that
was running is *not* run again: the model is told its outcome is unknown (and the row says so, so a second
restart does not tell it twice), and the router posts a short note in the thread naming the call.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from agent.journal import OUTCOME_UNKNOWN_NOTE, ResumedStep
from agent.tools import Decision, ToolCall, ToolResult, ToolSpec
from bots.seam.messages import ThreadKey
from bots.tools.approvals import ApprovalFlow
from storage.protocols import TurnJournal
from storage.records import CallEnd, JournalCall, JournalStep

log = logging.getLogger(__name__)

INTERRUPTED_CALL_NOTE = (
    "I restarted while {name} was running, so I don't know whether it took effect; I did not run it again."
)


def call_state(result: ToolResult) -> str:
    """The journal state a finished call ends in."""
    if result.approved is False:
        return "denied" if result.decided_by else "expired"
    return "failed" if result.is_error else "done"


def journal_arguments(call: ToolCall) -> str:
    """A call's arguments as the trail has always stored them (a JSON object, keys sorted)."""
    return json.dumps(call.arguments, ensure_ascii=False, sort_keys=True)


class TurnRecord:
    """One turn's journal in one thread (an ``agent.journal.TurnJournal``)."""

    def __init__(
        self,
        *,
        store: TurnJournal,
        thread_id: int,
        after_message_id: int,
        clock: Callable[[], datetime],
        steps: Mapping[str, int] | None = None,
        read_only: Container[str] = (),
    ) -> None:
        self._store = store
        self._read_only = read_only  # tools whose calls are run again after a restart: no running row needed
        self._thread_id = thread_id
        self._after = after_message_id
        self._clock = clock
        self._step_of: dict[str, int] = dict(steps or {})  # call id -> the step that asked for it
        self._unwritten: tuple[str, tuple[ToolCall, ...]] | None = None  # the last step, until a call moves
        self._writing = asyncio.Lock()
        self.open = bool(steps)  # whether this turn has steps in the journal (to close when it ends)

    async def step(self, *, text: str, calls: Sequence[ToolCall]) -> None:
        """Kept until one of its calls starts, waits or ends: then written with that in one transaction (one
        write less in the tool step; a step none of whose calls started has nothing to resume)."""
        self._unwritten = (text, tuple(calls))

    async def _step_id(
        self, call: ToolCall, *, running: bool = False, ended: CallEnd | None = None
    ) -> tuple[int, bool]:
        """The id of ``call``'s step, written now if it was not (``running``: with ``call`` as running; ``ended``:
        with it ended); the flag says whether that write recorded it so. KeyError: the call is of no step here."""
        async with self._writing:
            if call.id in self._step_of:
                return self._step_of[call.id], False
            if self._unwritten is None or all(c.id != call.id for c in self._unwritten[1]):
                raise KeyError(call.id)
            text, calls = self._unwritten
            step_id = await self._store.open_step(
                thread_id=self._thread_id,
                after_message_id=self._after,
                text=text,
                calls=[(c.id, c.name, journal_arguments(c)) for c in calls],
                now=self._clock(),
                running=call.id if running else None,
                ended=ended,
            )
            self._unwritten = None
            self._step_of.update((c.id, step_id) for c in calls)
            self.open = True
            return step_id, running or ended is not None

    def knows(self, call: ToolCall) -> bool:
        """Whether ``call`` belongs to a step of this turn (written or about to be)."""
        return call.id in self._step_of or (
            self._unwritten is not None and any(c.id == call.id for c in self._unwritten[1])
        )

    async def running(self, call: ToolCall) -> None:
        """Committed before the call is sent. A read-only call writes nothing now: a restart runs it again
        whatever its row says, so its step (if no other call wrote it) goes with its result, in one commit."""
        if call.name in self._read_only:
            if not self.knows(call):
                raise KeyError(call.id)  # the call is not run
            return
        step_id, written = await self._step_id(call, running=True)  # KeyError: the call is not run
        if not written:
            await self._store.set_state(step_id=step_id, call_id=call.id, state="running")

    async def mark(self, call: ToolCall, state: str) -> None:
        """``allowed``: where an approval stands (a failure here only loses detail)."""
        try:
            step_id, _ = await self._step_id(call)
            await self._store.set_state(step_id=step_id, call_id=call.id, state=state)
        except Exception:
            log.exception("could not record that %s is %s", call.name, state)

    async def ended(self, result: ToolResult, *, approval: str) -> None:
        """Committed as soon as the result is here (with the step, when this call is the first to write it)."""
        end = CallEnd(
            call_id=result.call.id,
            state=call_state(result),
            result=result.text,
            is_error=result.is_error,
            duration_ms=result.duration_ms,
            approval=approval,
            decided_by=result.decided_by,
            cites=result.cites,
        )
        step_id, written = await self._step_id(result.call, ended=end)
        if not written:
            await self._store.finish(
                step_id=step_id, call_id=end.call_id, state=end.state, result=end.result, is_error=end.is_error,
                duration_ms=end.duration_ms, approval=end.approval, decided_by=end.decided_by, cites=end.cites,
            )  # fmt: skip

    async def waiting(self, call: ToolCall, approval_id: int) -> None:
        """``call`` waits on approval card ``approval_id``."""
        step_id, _ = await self._step_id(call)
        await self._store.set_waiting(step_id=step_id, call_id=call.id, approval_id=approval_id)

    def approver(
        self, flow: ApprovalFlow, *, thread: ThreadKey, thread_id: int, interrupted: Interrupted | None
    ) -> Callable[[ToolCall, ToolSpec], Awaitable[Decision]]:
        """The turn's ``approve``: cards linked to their calls in the journal; a resumed call that was allowed asks
        no one again, and one that waited on a card waits on that same card (it outlived the process)."""
        allowed = interrupted.allowed if interrupted is not None else {}
        cards = interrupted.cards if interrupted is not None else {}

        async def approve(call: ToolCall, spec: ToolSpec) -> Decision:
            if call.id in allowed:
                return Decision(approved=True, decided_by=allowed[call.id])
            if call.id in cards:
                decision = await flow.wait_on(cards[call.id], thread=thread)
            else:

                async def opened(approval_id: int) -> None:
                    await self.waiting(call, approval_id)

                decision = await flow.ask(call, thread=thread, thread_id=thread_id, spec=spec, on_open=opened)
            if decision.approved:
                await self.mark(call, "allowed")
            return decision

        return approve


@dataclass(frozen=True, slots=True)
class Interrupted:
    """An interrupted turn, ready to replay: its steps, the calls allowed already, and the calls lost mid-run."""

    steps: tuple[ResumedStep, ...]
    step_of: dict[str, int]  # call id -> step id, for the calls that still get journaled
    allowed: dict[str, str | None]  # call id -> who allowed it
    cards: dict[str, int]  # call id -> the approval card it waits on
    unknown: tuple[JournalCall, ...]  # side-effecting calls that were running: not run again


def _replayed(call: ToolCall, row: JournalCall) -> ToolResult:
    approved = {"denied": False, "expired": False}.get(row.state, True if row.decided_by else None)
    return ToolResult(call, row.result, row.is_error, 0, decided_by=row.decided_by, approved=approved)


def resumed_steps(steps: Sequence[JournalStep], *, read_only: Callable[[str], bool]) -> Interrupted:
    """What the session replays of ``steps``; see the module docstring for what becomes of each call."""
    resumed: list[ResumedStep] = []
    step_of: dict[str, int] = {}
    allowed: dict[str, str | None] = {}
    cards: dict[str, int] = {}
    unknown: list[JournalCall] = []
    for step in steps:
        calls: list[ToolCall] = []
        results: list[ToolResult | None] = []
        for row in step.calls:
            call = ToolCall.from_raw(id=row.call_id, name=row.tool, raw_arguments=row.arguments_json)
            calls.append(call)
            if row.state in ("done", "failed", "denied", "expired"):
                results.append(_replayed(call, row))
            elif row.state == "running" and not read_only(row.tool):
                unknown.append(row)
                results.append(ToolResult(call, OUTCOME_UNKNOWN_NOTE.format(name=row.tool), True, 0))
            else:
                if row.state == "allowed":
                    allowed[row.call_id] = row.decided_by
                elif row.state == "waiting" and row.approval_id is not None:
                    cards[row.call_id] = row.approval_id
                step_of[row.call_id] = step.id
                results.append(None)
            step_of.setdefault(row.call_id, step.id)
        resumed.append(ResumedStep(step.text, tuple(calls), tuple(results)))
    return Interrupted(tuple(resumed), step_of, allowed, cards, tuple(unknown))
