"""Resolving a click on a tool-call approval card: once, by the first person who counts, in SQLite.

Approval cards follow the "Where were we?" card's rules. The button names its approval by number only, so
the approval row (``storage/trail.py``) leads to the thread, and a click from any other thread is refused (a
stale button, a forged id). The first Allow or Deny wins through ``ApprovalStore.decide``'s conditional
UPDATE; every later click, and a click on a request an earlier run left behind (expired at start-up), gets a
note for the clicker alone. Adapters only translate the click; what it means is decided here.

This is the part of the approval flow a click needs, kept on the approvals branch so the platform adapters
have a real ``ThreadRouter.handle_approval_click`` to call. main's ``bots/approvals.py`` (``ApprovalFlow``)
resolves clicks the same way, with the same notes, and also knows which calls this process waits on; at the
merge it supersedes this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from bots.messages import ApprovalAction, ApprovalClick, ThreadKey
from bots.ports import ApprovalCard, ApprovalState, ClickResult, ThreadOutbox
from storage.log import ThreadLog
from storage.trail import ApprovalRecord, ApprovalStore

log = logging.getLogger(__name__)

STALE_APPROVAL_NOTE = "That request is no longer active."
# The wording of main's bots/approvals.py, so a click reads the same whichever resolves it.
EXPIRED_NOTE = "That request expired when I restarted; nothing was run."
NOT_AN_APPROVER_NOTE = "Only the people this bot's operator named can approve tool calls here."

DecisionHook = Callable[[int, ApprovalState], None]


async def resolve_approval_click(
    click: ApprovalClick,
    *,
    approvals: ApprovalStore,
    log_store: ThreadLog,
    outbox_for: Callable[[ThreadKey], ThreadOutbox],
    clock: Callable[[], datetime],
    approvers: frozenset[str] = frozenset(),
    on_decided: DecisionHook | None = None,
) -> ClickResult:
    """Decide the approval once, show the outcome on its card, and tell a clicker whose click did not count.

    ``approvers`` (TOOL_APPROVERS) narrows who may decide; empty means anyone the platform's allowlists let
    click. ``on_decided`` hears the winning decision (the waiting tool call goes on); it is not called for
    clicks that did not count.
    """
    record = await approvals.get(approval_id=click.approval_id)
    thread = None if record is None else await log_store.thread(thread_id=record.thread_id)
    if record is None or thread is None:
        return ClickResult(private_note=STALE_APPROVAL_NOTE)
    key = ThreadKey(thread.platform, thread.workspace, thread.channel, thread.thread)
    if click.thread is not None and not click.thread.is_same_place(key):
        log.warning("refusing a click on approval %s from %s: it belongs to %s", record.id, click.thread, key)
        return ClickResult(private_note=STALE_APPROVAL_NOTE)
    if approvers and click.user.id not in approvers:
        log.info("refusing a click on approval %s by %s: not in TOOL_APPROVERS", record.id, click.user.id)
        return ClickResult(private_note=NOT_AN_APPROVER_NOTE)
    if record.state != ApprovalState.PENDING:
        return await _not_counted(record, key, outbox_for)
    target = ApprovalState.APPROVED if click.action is ApprovalAction.ALLOW else ApprovalState.DENIED
    won = await approvals.decide(
        approval_id=record.id, state=target.value, by_id=click.user.id, by_name=click.user.display_name, now=clock()
    )
    if not won:
        latest = await approvals.get(approval_id=record.id)
        return await _not_counted(latest or record, key, outbox_for)
    if on_decided is not None:
        on_decided(record.id, target)
    await show_approval(record, card_of(record, key, target, decided_by=click.user.display_name), outbox_for)
    return ClickResult()


def card_of(record: ApprovalRecord, key: ThreadKey, state: ApprovalState, *, decided_by: str | None) -> ApprovalCard:
    return ApprovalCard(
        approval_id=record.id,
        thread=key,
        tool=record.tool,
        arguments_preview=record.arguments_preview,
        state=state,
        decided_by=decided_by,
    )


async def show_approval(
    record: ApprovalRecord, card: ApprovalCard, outbox_for: Callable[[ThreadKey], ThreadOutbox]
) -> None:
    """Update the posted card; a platform refusing the edit costs the display only, never the decision."""
    if record.card_message_id is None:
        return
    try:
        await outbox_for(card.thread).update_approval(card=card, message_id=record.card_message_id)
    except Exception:
        log.exception("could not update approval card %s in %s", record.id, card.thread)


async def _not_counted(
    record: ApprovalRecord, key: ThreadKey, outbox_for: Callable[[ThreadKey], ThreadOutbox]
) -> ClickResult:
    """The note for a click that came too late; an expired card also loses its buttons now."""
    state = ApprovalState(record.state)
    if state is ApprovalState.EXPIRED:
        await show_approval(record, card_of(record, key, state, decided_by=None), outbox_for)
        return ClickResult(private_note=EXPIRED_NOTE)
    if state is ApprovalState.TIMED_OUT:
        return ClickResult(private_note="That request timed out; the call was not made.")
    if state is ApprovalState.PENDING:
        return ClickResult(private_note=STALE_APPROVAL_NOTE)
    who = record.decided_by_name or "Someone"
    verb = "allowed" if state is ApprovalState.APPROVED else "denied"
    return ClickResult(private_note=f"{who} already {verb} that call.")
