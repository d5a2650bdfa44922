"""Approval clicks decided in the router (bots/approval_clicks.py), through ThreadRouter.handle_approval_click.

A real router on a real SQLite file with the recording outbox; the approval rows are opened as the approval
flow will open them (``tests/approval_rows.py``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bots.approval_clicks import resolve_approval_click
from bots.messages import ApprovalAction, ApprovalClick, utc_now
from bots.ports import ApprovalState
from storage.db import open_database
from storage.log import ThreadLog
from storage.trail import ApprovalStore
from tests.approval_rows import approval_row, expire_pending, post_approval, stand_in_only
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM
from tests.router_harness import ALICE, BOB, running_router, thread_key

pytestmark = stand_in_only  # bots/approval_clicks.py gives way to main's ApprovalFlow at the merge


async def test_two_people_clicking_at_once_end_in_one_decision_and_one_note(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with running_router(make_settings()) as bot:
        await bot.say("hello")
        approval_id, message_id = await post_approval(db_path, bot.outbox, thread_key())
        results = await asyncio.gather(
            bot.router.handle_approval_click(ApprovalClick(approval_id, ApprovalAction.ALLOW, ALICE)),
            bot.router.handle_approval_click(ApprovalClick(approval_id, ApprovalAction.DENY, BOB)),
        )
    state, who = approval_row(db_path, approval_id)
    notes = [r.private_note for r in results]
    assert notes.count(None) == 1
    verb = "allowed" if state == "approved" else "denied"
    assert f"{who} already {verb} that call." in notes
    [(updated_id, card)] = bot.outbox.approval_updates
    assert updated_id == message_id and card.state.value == state and card.decided_by == who
    assert not card.buttons_live


async def test_a_click_on_a_request_an_earlier_run_left_says_it_expired_and_drops_the_buttons(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with running_router(make_settings()) as bot:
        await bot.say("hello")
        approval_id, _ = await post_approval(db_path, bot.outbox, thread_key())
        await expire_pending(db_path)  # what a restart does
        result = await bot.router.handle_approval_click(
            ApprovalClick(approval_id, ApprovalAction.ALLOW, ALICE, thread=thread_key())
        )
    assert result.private_note == "That request expired when I restarted; nothing was run."
    assert approval_row(db_path, approval_id) == ("expired", None)
    assert [c.state for _, c in bot.outbox.approval_updates] == [ApprovalState.EXPIRED]


async def test_unknown_approvals_other_threads_and_non_approvers_do_not_count(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    decided: list[tuple[int, ApprovalState]] = []
    async with running_router(make_settings()) as bot:
        await bot.say("hello")
        approval_id, _ = await post_approval(db_path, bot.outbox, thread_key())
        unknown = await bot.router.handle_approval_click(ApprovalClick(approval_id + 99, ApprovalAction.ALLOW, ALICE))
        elsewhere = await bot.router.handle_approval_click(
            ApprovalClick(approval_id, ApprovalAction.ALLOW, ALICE, thread=thread_key("t2"))
        )
        db = await open_database(db_path)
        try:

            async def click_as(who: str) -> str | None:
                result = await resolve_approval_click(
                    ApprovalClick(approval_id, ApprovalAction.DENY, BOB if who == "bob" else ALICE),
                    approvals=ApprovalStore(db),
                    log_store=ThreadLog(db),
                    outbox_for=bot.router.outbox,
                    clock=utc_now,
                    approvers=frozenset({ALICE.id}),
                    on_decided=lambda i, s: decided.append((i, s)),
                )
                return result.private_note

            not_an_approver = await click_as("bob")
            approver = await click_as("alice")
        finally:
            await db.close()
    assert unknown.private_note == elsewhere.private_note == "That request is no longer active."
    assert not_an_approver == "Only the people this bot's operator named can approve tool calls here."
    assert approver is None and decided == [(approval_id, ApprovalState.DENIED)]
    assert approval_row(db_path, approval_id) == ("denied", "Alice")
