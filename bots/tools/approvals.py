"""Tool approvals: a card with Allow and Deny, the same rules as the "Where were we?" card.

A call the ToolBox says needs a person (``agent.tools.needs_approval``) waits on :meth:`ApprovalFlow.ask`: an
approval row is written, the card is posted in the thread, and the turn waits until someone clicks or
``APPROVAL_TIMEOUT_S`` passes. The first decision wins through a conditional UPDATE (``storage/trail.py``), so a
double click, two people clicking Allow and Deny at once, or a click racing the timeout all end in one outcome;
the others are told privately what was decided. Only people the adapters' allowlists admit can click at all,
and with ``TOOL_APPROVERS`` set only those ids may decide.

A card outlives the process that posted it, until its ``APPROVAL_TIMEOUT_S`` (from when it was asked for, by
the database's clock, for every wait and click alike: ``bots/tools/approval_waits.py``) or a decision; a process
shutting down leaves its cards pending and its waiting turns to the next. The turn journal
(``bots/tools/journal.py``) records which call waits on which card. A click on a card whose turn no process holds
is decided here, in the database (first click wins), and the turn resumed (``resume_turn``: as Catch me up would,
the click counting as that choice): Allow runs the call once, Deny tells the model it was refused; a click after
the timeout says so, and the turn goes on with the call refused. While such a click resumes a thread's turn, the
start-up pass leaves that thread alone (:meth:`ApprovalFlow.resuming`): no "Where were we?" card. A card no
journaled call waits on (its turn ended, or an earlier version posted it) expires on a click: never "allowed"
without the call running. A resumed turn whose call waits on a card still pending waits on that same card
(:meth:`ApprovalFlow.wait_on`) for the rest of its time.

The row keeps the call's full arguments (as JSON in the tool's schema order, in the column still named
``arguments_preview``): the card shows each argument cut on its own (``bots/tools/approval_arguments.py``), and "Show
all" reads them back from the row for the clicker alone, after the same checks as a decision's click (the
adapters' allowlists, the card's own thread). ``TOOL_APPROVERS`` does not apply: whoever may read the thread and
its export may read what the bot wants to run.

Several workers: only the process whose turn waits for the call may record a decision, since only it can make
the decision true. A click received by another worker is handed to the thread's owner (a wake-up carrying the
click), which decides it and resumes the turn when no turn of its own waits for that call. A click on a card
whose owner died is decided by the worker that received it, which takes the thread over and resumes the turn.
A click handed to an owner is followed until it is decided: the owner may have died after its last lease renewal
(a restart on Postgres finds its own earlier run as the thread's owner for up to ``WORKER_LEASE_S``), and a
wake-up to a dead worker is lost. Once that owner's lease is gone with the approval still pending, the worker that
received the click decides it itself (or hands it to whoever took the thread).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from agent.tools import Approver, Decision, ToolCall, ToolSpec
from bots.router.thread_state import clicked_thread, thread_key
from bots.seam.messages import ApprovalAction, ApprovalClick, ArgumentsClick, Author, ThreadKey
from bots.seam.ports import ApprovalCard, ApprovalState, ClickResult, FullArguments, ThreadOutbox
from bots.tools.approval_arguments import full_arguments, ordered_arguments
from bots.tools.approval_waits import ApprovalWaits
from storage.protocols import ApprovalStore, ThreadLog
from storage.records import ApprovalRecord

log = logging.getLogger(__name__)

STALE_NOTE = "That request is no longer active."
EXPIRED_NOTE = "That request expired when I restarted; nothing was run."
NOT_AN_APPROVER_NOTE = "Only the people this bot's operator named can approve tool calls here."
TIMEOUT_REASON = "nobody answered in time"
EXPIRED_REASON = "the request expired before anyone decided"
STOPPED_REASON = "the answer was stopped before anyone decided"
TIMED_OUT_NOTE = "That request timed out; the call was not made."

ResumeTurn = Callable[[int, ThreadKey, Author], Awaitable[None]]  # thread id, its key, who clicked
ApprovalOpened = Callable[[int], Awaitable[None]]  # told the new approval's id (the turn journal links it)
CallWaits = Callable[[int, int], Awaitable[bool]]  # thread id, approval id: a journaled call waits on it
Spawn = Callable[[Coroutine[Any, Any, None]], object]  # runs work beside the click (the router's tasks)
FORWARDED_CLICK_CHECK_S = 1.0  # how often a click handed to another worker is checked for its decision


class RemoteOwners(Protocol):
    """Several workers on one database (``bots/workers/ownership.py``): a call may wait in another worker."""

    async def elsewhere(self, thread_id: int) -> str | None:
        """The live worker owning the thread when it is not this one; None otherwise."""
        ...

    async def wake(self, owner: str, *, kind: str, thread_id: int, detail: dict[str, str] | None = None) -> None: ...


class ApprovalFlow:
    """Posts approval cards, waits for a decision or the timeout, and resolves clicks."""

    def __init__(
        self,
        *,
        store: ApprovalStore,
        log: ThreadLog,
        outbox: Callable[[ThreadKey], ThreadOutbox],
        clock: Callable[[], datetime],
        timeout_s: float,
        approvers: frozenset[str] = frozenset(),
        owners: RemoteOwners | None = None,
        leaving: asyncio.Event | None = None,
    ) -> None:
        self._store = store
        self._log = log
        self._outbox = outbox
        self._clock = clock
        self._timeout_s = timeout_s
        self._approvers = approvers
        self._waiting: dict[int, asyncio.Future[Decision]] = {}
        self._thread_of: dict[int, int] = {}  # approval id -> thread row id, while its call waits here
        self._resuming: dict[int, int] = {}  # thread row id -> clicks deciding an orphaned approval there, resuming
        self._waits = ApprovalWaits(store=store, timeout_s=timeout_s, clock=clock, leaving=leaving)
        self.owners = owners
        self.resume_turn: ResumeTurn | None = None  # set by the router: resume a thread's turn as Catch me up would
        self.journaled: CallWaits | None = None  # set by ThreadTools: does an interrupted turn's call wait on it?
        self.spawn: Spawn | None = None  # set by the router: follow a click handed to another worker

    def approver(self, *, thread: ThreadKey, thread_id: int) -> Approver:
        """The ``approve`` callback of one turn in ``thread``."""

        async def approve(call: ToolCall, spec: ToolSpec) -> Decision:
            return await self.ask(call, thread=thread, thread_id=thread_id, spec=spec)

        return approve

    async def ask(
        self,
        call: ToolCall,
        *,
        thread: ThreadKey,
        thread_id: int,
        spec: ToolSpec | None = None,
        on_open: ApprovalOpened | None = None,
    ) -> Decision:
        """Post the card and wait; a timeout or a card that cannot be posted is a refusal."""
        arguments = ordered_arguments(call.arguments, call.raw_arguments, spec.input_schema if spec else None)
        approval_id = await self._store.open(
            thread_id=thread_id, tool=call.name, arguments_preview=arguments, now=self._clock()
        )
        if on_open is not None:
            try:
                await on_open(approval_id)
            except Exception:
                log.exception("could not link approval %s to its call in the turn journal", approval_id)
        card = ApprovalCard(approval_id, thread, call.name, arguments, ApprovalState.PENDING)
        decided: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._waiting[approval_id] = decided
        self._thread_of[approval_id] = thread_id
        try:
            try:
                message_id = await self._outbox(thread).post_approval(card=card)
            except Exception:
                log.exception("could not post the approval card for %s in %s; the call is refused", call.name, thread)
                await self._decide_unanswered(approval_id, "timed_out")
                return Decision(approved=False, decided_by=None, reason="I could not ask anyone to approve it")
            await self._store.set_message_id(approval_id=approval_id, card_message_id=message_id)
            decision = await self._waits.until_decided(approval_id, decided)
            if decision is not None:
                return decision
            if await self._decide_unanswered(approval_id, "timed_out"):
                await self._show(card, message_id, ApprovalState.TIMED_OUT, None)
                return Decision(approved=False, decided_by=None, reason=TIMEOUT_REASON)
            return await self._decision_of(approval_id, decided)  # a click won the race against the timeout
        finally:
            self._waiting.pop(approval_id, None)
            self._thread_of.pop(approval_id, None)

    async def expire_thread(self, *, thread_id: int, stopped_by: str) -> int:
        """A stopped turn: the calls waiting for a decision in the thread are expired (their cards say who stopped
        the answer) and refused to the turn, which then starts no other. Returns how many."""
        expired = 0
        for approval_id, owner in list(self._thread_of.items()):
            waiting = self._waiting.get(approval_id)
            if owner != thread_id or waiting is None or waiting.done():
                continue
            if not await self._decide_unanswered(approval_id, "expired"):
                continue  # a click decided it first; that decision stands
            if not waiting.done():
                waiting.set_result(Decision(approved=False, decided_by=None, reason=STOPPED_REASON))
            record = await self._store.get(approval_id=approval_id)
            key = await thread_key(self._log, thread_id=thread_id)
            if record is not None and key is not None:
                await self._show_record(record, key, ApprovalState.EXPIRED, stopped_by)
            expired += 1
        return expired

    async def wait_on(self, approval_id: int, *, thread: ThreadKey) -> Decision:
        """A resumed call whose card an earlier process posted: its decision, or wait the rest of its time."""
        record = await self._store.get(approval_id=approval_id)
        if record is None or record.state in ("expired", "timed_out"):
            reason = TIMEOUT_REASON if record is not None and record.state == "timed_out" else EXPIRED_REASON
            return Decision(approved=False, decided_by=None, reason=reason)
        if record.state != "pending":
            return Decision(approved=record.state == "approved", decided_by=record.decided_by_name)
        decided: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._waiting[approval_id] = decided
        try:
            decision = await self._waits.until_decided(approval_id, decided)
            if decision is not None:
                return decision
            if await self._decide_unanswered(approval_id, "timed_out"):
                await self._show_record(record, thread, ApprovalState.TIMED_OUT, None)
                return Decision(approved=False, decided_by=None, reason=TIMEOUT_REASON)
            return await self._decision_of(approval_id, decided)
        finally:
            self._waiting.pop(approval_id, None)

    async def is_live(self, approval_id: int) -> bool:
        """Whether the approval still waits for a click, within its time."""
        record = await self._store.get(approval_id=approval_id)
        return record is not None and record.state == "pending" and self._waits.time_left(record) > 0

    def resuming(self, thread_id: int) -> bool:
        """Whether a click here is deciding an approval no live turn waits on in the thread, to resume its turn: the
        start-up pass (``router.resume``) must not post a "Where were we?" card there meanwhile."""
        return self._resuming.get(thread_id, 0) > 0

    async def handle_click(self, click: ApprovalClick) -> ClickResult:
        """Decide an approval once; everyone else gets a private note saying what happened."""
        record, key = await self._clicked(click.approval_id, click.thread)
        if record is None or key is None:
            return ClickResult(private_note=STALE_NOTE)
        if self._approvers and click.user.id not in self._approvers:
            return ClickResult(private_note=NOT_AN_APPROVER_NOTE)
        if record.card_message_id is None and click.card_message_id is not None:
            # Posted just before a crash, its id never stored: the click, from the card's own thread, names it.
            await self._store.set_message_id(approval_id=record.id, card_message_id=click.card_message_id)
            record = replace(record, card_message_id=click.card_message_id)
        if record.state == "expired":
            await self._show_record(record, key, ApprovalState.EXPIRED, None)  # an earlier run's card loses its buttons
            return ClickResult(private_note=EXPIRED_NOTE)
        if record.state != "pending":
            return ClickResult(private_note=_decided_note(record))
        owner = None
        if record.id not in self._waiting and self.owners is not None:
            owner = await self.owners.elsewhere(record.thread_id)
        if owner is not None and self.owners is not None:  # the call, if any, waits in the owner: it decides
            detail = {"approval_id": str(record.id), "action": click.action.value}
            detail |= {"user_id": click.user.id, "user_name": click.user.display_name}
            await self.owners.wake(owner, kind="approval", thread_id=record.thread_id, detail=detail)
            if self.spawn is not None:
                self.spawn(self._follow_forwarded(record, key, click, owner=owner, detail=detail))
            return ClickResult()
        return await self._decide_here(record, key, click)

    async def _follow_forwarded(
        self, record: ApprovalRecord, key: ThreadKey, click: ApprovalClick, *, owner: str, detail: dict[str, str]
    ) -> None:
        """A click handed to ``owner``: if the owner's lease goes with the approval still pending (it died before
        the wake-up reached it), decide it here, or hand it to the worker that took the thread."""
        try:
            latest: ApprovalRecord | None = record
            while latest is not None and self._waits.time_left(latest) > 0 and self.owners is not None:
                await asyncio.sleep(FORWARDED_CLICK_CHECK_S)
                latest = await self._store.get(approval_id=record.id)  # read again: its age, its state
                if latest is None or latest.state != "pending":
                    return
                now_owner = await self.owners.elsewhere(record.thread_id)
                if now_owner == owner:
                    continue
                if now_owner is None:
                    log.info("approval %s: its owner %s is gone; deciding the click here", record.id, owner)
                    await self._decide_here(latest, key, click)
                    return
                owner = now_owner
                await self.owners.wake(owner, kind="approval", thread_id=record.thread_id, detail=detail)
        except Exception:
            log.exception("could not follow the click on approval %s handed to another worker", record.id)

    async def clicked_elsewhere(self, detail: dict[str, str]) -> None:
        """A click another worker received on an approval in a thread this worker owns (its wake-up detail)."""
        approval_id = int(detail["approval_id"])
        waiting = self._waiting.get(approval_id)
        if "action" not in detail:  # a worker of an earlier version decided it in the database already
            if waiting is not None and not waiting.done():
                waiting.set_result(await self._decision_of(approval_id, waiting))
            return
        record = await self._store.get(approval_id=approval_id)
        key = None if record is None else await thread_key(self._log, thread_id=record.thread_id)  # place checked
        if record is None or key is None or record.state != "pending":
            return
        user = Author(detail["user_id"], detail["user_name"])
        outcome = await self._decide_here(record, key, ApprovalClick(record.id, ApprovalAction(detail["action"]), user))
        log.info("approval %s, clicked at another worker: %s", record.id, outcome.private_note or "decided")

    async def _decide_here(self, record: ApprovalRecord, key: ThreadKey, click: ApprovalClick) -> ClickResult:
        """Decide in this process: the waiting call gets the click's decision; nothing waiting, the journaled turn
        resumes, and a card no journaled call waits on (its turn ended, or a run before the journal) expires."""
        waiting = self._waiting.get(record.id)
        if waiting is None or waiting.done():
            # Nothing in this process waits for it: the run (or worker) that posted it died.
            if self.journaled is not None and await self.journaled(record.thread_id, record.id):
                return await self._decide_orphaned(record, key, click)
            if not await self._decide_unanswered(record.id, "expired"):
                latest = await self._store.get(approval_id=record.id)
                return ClickResult(private_note=_decided_note(latest or record))
            await self._show_record(record, key, ApprovalState.EXPIRED, None)
            return ClickResult(private_note=EXPIRED_NOTE)
        state = await self._decide_in_time(record, click)
        if state is None:
            latest = await self._store.get(approval_id=record.id)
            return ClickResult(private_note=_decided_note(latest or record))
        if state is ApprovalState.TIMED_OUT:  # late by the database's clock, though this process still waited
            await self._show_record(record, key, state, None)
            if not waiting.done():
                waiting.set_result(Decision(approved=False, decided_by=None, reason=TIMEOUT_REASON))
            return ClickResult(private_note=TIMED_OUT_NOTE)
        # The card shows the decision before the call is let go, so the thread reads "Allowed by ..." before the
        # call's result or the answer that follows it (a resumed turn's answer can come within one round trip).
        await self._show_record(record, key, state, click.user.display_name)
        if not waiting.done():
            waiting.set_result(Decision(approved=state is ApprovalState.APPROVED, decided_by=click.user.display_name))
        return ClickResult()

    async def _decide_in_time(self, record: ApprovalRecord, click: ApprovalClick) -> ApprovalState | None:
        """The click's decision, if it came within ``APPROVAL_TIMEOUT_S`` by the database's clock (judged in the same
        statement, as on every worker); TIMED_OUT when it came late to a card still pending; None when another
        decision came first."""
        state = ApprovalState.APPROVED if click.action is ApprovalAction.ALLOW else ApprovalState.DENIED
        if await self._store.decide(
            approval_id=record.id,
            state=state.value,
            by_id=click.user.id,
            by_name=click.user.display_name,
            now=self._clock(),
            within_s=self._timeout_s,
        ):
            return state
        if await self._decide_unanswered(record.id, ApprovalState.TIMED_OUT.value):
            return ApprovalState.TIMED_OUT
        return None

    async def _decide_orphaned(self, record: ApprovalRecord, key: ThreadKey, click: ApprovalClick) -> ClickResult:
        """A click on a card no live turn waits on: decide it in the database, then resume the thread's turn.

        The thread counts as resuming from before the decision is written until the turn is handed on, so a
        start-up pass that reads the approval decided does not take the thread for one nobody resumes."""
        thread_id = record.thread_id
        self._resuming[thread_id] = self._resuming.get(thread_id, 0) + 1
        try:
            state = await self._decide_in_time(record, click)
            if state is None:
                latest = await self._store.get(approval_id=record.id)
                return ClickResult(private_note=_decided_note(latest or record))
            timed_out = state is ApprovalState.TIMED_OUT
            await self._show_record(record, key, state, None if timed_out else click.user.display_name)
            if self.resume_turn is not None:
                try:
                    await self.resume_turn(thread_id, key, click.user)
                except Exception:
                    log.exception("could not resume the turn in %s after approval %s", key, record.id)
            return ClickResult(private_note=TIMED_OUT_NOTE if timed_out else None)
        finally:
            self._resuming[thread_id] -= 1
            if not self._resuming[thread_id]:
                del self._resuming[thread_id]

    async def show_arguments(self, click: ArgumentsClick) -> ClickResult:
        """ "Show all": the call's full arguments for the clicker alone, if the card belongs to the clicked thread."""
        record, key = await self._clicked(click.approval_id, click.thread)
        if record is None or key is None:
            return ClickResult(private_note=STALE_NOTE)
        shown = FullArguments(record.id, record.tool, full_arguments(record.arguments_preview))
        return ClickResult(arguments=shown)

    async def _clicked(
        self, approval_id: int, clicked_in: ThreadKey | None
    ) -> tuple[ApprovalRecord | None, ThreadKey | None]:
        """The approval a button names, and its thread if the click came from that thread (else None)."""
        record = await self._store.get(approval_id=approval_id)
        if record is None:
            return None, None
        return record, await clicked_thread(self._log, thread_id=record.thread_id, clicked_in=clicked_in)

    async def _decision_of(self, approval_id: int, decided: asyncio.Future[Decision]) -> Decision:
        """The decision a click made in this process, or the one the database holds (the call was expired)."""
        if decided.done():
            return decided.result()
        record = await self._store.get(approval_id=approval_id)
        if record is not None and record.state in ("approved", "denied"):
            return Decision(approved=record.state == "approved", decided_by=record.decided_by_name)
        if record is None or record.state != "pending":  # expired by a click while this worker lost the thread
            return Decision(approved=False, decided_by=None, reason=EXPIRED_REASON)
        return await decided

    async def _decide_unanswered(self, approval_id: int, state: str) -> bool:
        now = self._clock()
        return await self._store.decide(approval_id=approval_id, state=state, by_id=None, by_name=None, now=now)

    async def _show_record(
        self, record: ApprovalRecord, key: ThreadKey, state: ApprovalState, decided_by: str | None
    ) -> None:
        if record.card_message_id is None:
            return
        card = ApprovalCard(record.id, key, record.tool, record.arguments_preview, state, decided_by)
        await self._show(card, record.card_message_id, state, decided_by)

    async def _show(self, card: ApprovalCard, message_id: str, state: ApprovalState, decided_by: str | None) -> None:
        view = ApprovalCard(card.approval_id, card.thread, card.tool, card.arguments_json, state, decided_by)
        try:
            await self._outbox(card.thread).update_approval(card=view, message_id=message_id)
        except Exception:
            log.exception("could not update approval card %s in %s", card.approval_id, card.thread)


def _decided_note(record: ApprovalRecord) -> str:
    who = record.decided_by_name or "Someone"
    return {
        "approved": f"{who} already allowed that call.",
        "denied": f"{who} already denied that call.",
        "timed_out": "That request timed out; the call was not made.",
        "expired": EXPIRED_NOTE,
    }.get(record.state, STALE_NOTE)
