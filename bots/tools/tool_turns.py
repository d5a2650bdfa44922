"""The tools of one turn in one thread, and what happens around each call: its progress line and its trail.

The shared providers (the MCP servers) are joined by the thread's built-ins (``search_thread`` over this
thread's log only), and every provider is wrapped so the thread shows "Running NAME…" while a call runs. Each
call is journaled as it happens (``bots/tools/journal.py``: the trail's rows with their states) after the last
message the turn answers, so the export and the next catch-up show what the agent did, with which arguments and
with what result, and a turn cut short by a restart resumes without running a call twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.journal import OUTCOME_UNKNOWN_NOTE, ResumedStep
from agent.steps import ResultHook
from agent.tools import Approver, ToolBox, ToolOutput, ToolProvider, ToolResult, ToolSpec
from bots.replies.render import tool_status
from bots.seam.messages import ThreadKey
from bots.seam.ports import ThreadOutbox
from bots.tools.approvals import ApprovalFlow
from bots.tools.builtin_tools import SEARCH_THREAD, SearchThreadTool
from bots.tools.journal import INTERRUPTED_CALL_NOTE, Interrupted, TurnRecord, resumed_steps
from storage.protocols import ThreadSearch, ToolTrail, TurnJournal

log = logging.getLogger(__name__)

TRAIL_EXCERPT_CHARS = 1_000


@dataclass(frozen=True, slots=True)
class TurnTools:
    """What ``AgentSession.turn`` takes for one turn."""

    box: ToolBox
    approve: Approver
    on_result: ResultHook
    journal: TurnRecord | None = None
    resumed: tuple[ResumedStep, ...] = ()  # the steps of this turn an earlier process took (agent/journal.py)


class _Announced:
    """A provider whose calls show a progress line in the thread while they run."""

    def __init__(self, provider: ToolProvider, *, outbox: ThreadOutbox, thread: ThreadKey) -> None:
        self._provider = provider
        self._outbox = outbox
        self._thread = thread

    def specs(self) -> list[ToolSpec]:
        return self._provider.specs()

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolOutput:
        await self._status(tool_status(name))
        try:
            return await self._provider.call(name, arguments)
        finally:
            await self._status(None)

    async def _status(self, text: str | None) -> None:
        try:
            await self._outbox.show_status(thread=self._thread, text=text)
        except Exception:
            log.debug("could not show the tool status in %s", self._thread, exc_info=True)


def trail_approval(result: ToolResult) -> str:
    """How the trail records the call's approval."""
    if result.approved is None:
        return "not_needed"
    if result.approved:
        return "approved"
    return "denied" if result.decided_by else "timed_out"


class ThreadTools:
    """Builds each turn's tools; one instance for the whole bot."""

    def __init__(
        self,
        *,
        shared: ToolBox,
        builtins: tuple[str, ...],
        search: ThreadSearch,
        trail: ToolTrail,
        approvals: ApprovalFlow,
        outbox: Callable[[ThreadKey], ThreadOutbox],
        clock: Callable[[], datetime],
        journal: TurnJournal | None = None,
    ) -> None:
        self._shared = shared
        self._journal = journal
        if journal is not None:
            approvals.journaled = self._call_waits_on
        self._builtins = builtins
        self._search = search
        self._trail = trail
        self.approvals = approvals
        self._outbox = outbox
        self._clock = clock

    async def interrupted(self, *, thread: ThreadKey, thread_id: int, waiting: Sequence[int]) -> Interrupted | None:
        """The thread's interrupted turn, when the messages it answered still wait; None when there is none.

        A side-effecting call that was running is ended here as failed (its outcome unknown), and the thread
        gets a note naming it. Steps whose messages were answered since (the answer was logged, the journal not
        yet closed, when the process died) are closed, not replayed.
        """
        if self._journal is None:
            return None
        steps = await self._journal.open_turn(thread_id=thread_id)
        if not steps:
            return None
        if any(step.after_message_id not in waiting for step in steps):
            await self._journal.close_turn(thread_id=thread_id, now=self._clock())
            return None
        read_only = {spec.name: spec.read_only for spec in self._shared.specs()}
        found = resumed_steps(steps, read_only=lambda tool: read_only.get(tool, False))
        for call in found.unknown:
            text = OUTCOME_UNKNOWN_NOTE.format(name=call.tool)
            await self._journal.finish(
                step_id=found.step_of[call.call_id], call_id=call.call_id, state="failed", result=text,
                is_error=True, duration_ms=0, approval="not_needed", decided_by=None, cites=(),
            )  # fmt: skip
            try:
                await self._outbox(thread).post_notice(thread=thread, text=INTERRUPTED_CALL_NOTE.format(name=call.tool))
            except Exception:
                log.exception("could not post the interrupted-call note in %s", thread)
        return found

    async def _call_waits_on(self, thread_id: int, approval_id: int) -> bool:
        """Whether a call of the thread's interrupted turn waits on approval ``approval_id``."""
        assert self._journal is not None
        steps = await self._journal.open_turn(thread_id=thread_id)
        return any(c.approval_id == approval_id and c.state == "waiting" for s in steps for c in s.calls)

    async def waits_on_card(self, thread_id: int) -> bool:
        """Whether the thread's interrupted turn waits on an approval card that is still live, or on one a click here
        is deciding (that click resumes the turn): either way a click, not a "Where were we?" card, goes on with it."""
        if self.approvals.resuming(thread_id):
            return True
        if self._journal is None:
            return False
        steps = await self._journal.open_turn(thread_id=thread_id)
        cards = [c.approval_id for s in steps for c in s.calls if c.state == "waiting" and c.approval_id is not None]
        for approval_id in cards:
            if await self.approvals.is_live(approval_id):
                return True
        return False

    async def turn_ended(self, *, thread_id: int, turn: TurnTools) -> None:
        """The turn's answer is logged: its journal steps, if it has any, are closed (they stay in the log)."""
        if self._journal is not None and turn.journal is not None and turn.journal.open:
            await self._journal.close_turn(thread_id=thread_id, now=self._clock())

    def for_turn(
        self, *, thread: ThreadKey, thread_id: int, after_message_id: int, interrupted: Interrupted | None = None
    ) -> TurnTools:
        extra: list[ToolProvider] = []
        if SEARCH_THREAD in self._builtins:
            extra.append(SearchThreadTool(search=self._search, thread_id=thread_id))
        outbox = self._outbox(thread)
        box = self._shared.with_extra(extra).wrapped(lambda p: _Announced(p, outbox=outbox, thread=thread))

        record = None
        if self._journal is not None:
            steps = interrupted.step_of if interrupted is not None else None
            record = TurnRecord(
                store=self._journal, thread_id=thread_id, after_message_id=after_message_id, clock=self._clock,
                steps=steps, read_only=frozenset(spec.name for spec in box.specs() if spec.read_only),
            )  # fmt: skip

        async def on_result(result: ToolResult) -> None:
            try:
                if record is not None and record.knows(result.call):
                    await record.ended(result, approval=trail_approval(result))
                    return
                await self._trail.record(
                    thread_id=thread_id,
                    after_message_id=after_message_id,
                    call_id=result.call.id,
                    tool=result.call.name,
                    arguments=result.call.arguments,
                    result_excerpt=result.text[:TRAIL_EXCERPT_CHARS],
                    is_error=result.is_error,
                    duration_ms=result.duration_ms,
                    approval=trail_approval(result),
                    decided_by=result.decided_by,
                    cites=result.cites,
                    now=self._clock(),
                )
            except Exception:
                log.exception("could not log the call to %s in %s to the trail", result.call.name, thread)

        approve = self.approvals.approver(thread=thread, thread_id=thread_id)
        if record is not None:
            approve = record.approver(self.approvals, thread=thread, thread_id=thread_id, interrupted=interrupted)
        resumed = interrupted.steps if interrupted is not None else ()
        return TurnTools(box=box, approve=approve, on_result=on_result, journal=record, resumed=resumed)
