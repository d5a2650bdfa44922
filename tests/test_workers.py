"""Several workers on one Postgres: one owner per thread, wake-ups, clicks anywhere, fencing, hand-back.

Each worker is a whole router (``open_router`` on the same ``postgresql://`` URL, its own pool, its own worker
id) with a recording outbox of its own, so a test can tell which worker answered. Time never passes by
sleeping: an expired lease is written into the database, the way a stalled worker would find it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bots.config import Settings
from bots.router.commands.flow import (
    FORGOTTEN_PRIVATE,
    MEMORY_ELSEWHERE,
    RETRY_FORWARDED,
    Command,
    CommandName,
    ForgetClick,
)
from bots.seam.messages import ApprovalAction, ApprovalClick, CardAction, CardClick, StopRequest, utc_now
from bots.seam.ports import ApprovalState, SessionStatus
from storage.leases import thread_resource
from storage.postgres.db import PostgresDatabase, open_postgres
from storage.postgres.leases import PostgresLeases
from storage.trail import ApprovalStore
from tests.fakes.llm import FakeLLM, ScriptedCall
from tests.fakes.mcp_server import calls_made, stdio_entry, write_config
from tests.fakes.waiting import wait_until
from tests.router_harness import ALICE, BOB, Bot, message, running_router, thread_key

MakeSettings = Callable[..., Settings]
# Long enough that no renewal runs during a test: a lost lease is then found by the fence, not by renewal.
SLOW_RENEWAL = {"worker_lease_s": 300.0, "worker_poll_s": 0.05}


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[PostgresDatabase]:
    db = await open_postgres(postgres_url)
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
def worker(make_settings: MakeSettings, postgres_url: str) -> Callable[..., Any]:
    """A context manager running one more worker on the test's Postgres database."""

    @asynccontextmanager
    async def run(**overrides: Any) -> AsyncIterator[Bot]:
        settings = make_settings(database_url=postgres_url, **(SLOW_RENEWAL | overrides))
        async with running_router(settings) as bot:
            await bot.router.ownership.listening()
            yield bot

    return run


async def thread_id_of(pg: PostgresDatabase, name: str = "t1") -> int:
    row = await pg.fetchone("SELECT id FROM threads WHERE thread = %s", (name,))
    assert row is not None
    return int(row["id"])


async def lease_holder(pg: PostgresDatabase, thread_id: int) -> str | None:
    return await PostgresLeases(pg).holder_of(resource=thread_resource(thread_id))


async def expire_lease(pg: PostgresDatabase, thread_id: int) -> None:
    await pg.execute(
        "UPDATE leases SET expires_utc = clock_timestamp() - interval '1 second' WHERE resource = %s",
        (thread_resource(thread_id),),
    )


async def assistant_rows(pg: PostgresDatabase) -> list[str]:
    rows = await pg.fetchall("SELECT content FROM messages WHERE role = 'assistant' ORDER BY id")
    return [str(r["content"]) for r in rows]


async def test_a_message_received_by_worker_b_is_answered_by_the_owner_a(
    worker: Callable[..., Any], pg: PostgresDatabase, fake_llm: FakeLLM
) -> None:
    async with worker() as a, worker() as b:
        await a.say("hello from the start")
        assert len(a.outbox.replies) == 1
        owner = await lease_holder(pg, await thread_id_of(pg))
        assert owner == a.router.ownership.worker_id

        await b.router.handle_message(message("a follow-up that reached worker B"))
        await wait_until(lambda: len(a.outbox.replies) == 2, timeout=10, what="the owner's answer")
        await a.router.idle()
        assert b.outbox.replies == [] and b.outbox.cards_posted == []
        assert "a follow-up that reached worker B" in fake_llm.requests[-1].prompt_text
        assert a.outbox.cards_posted == []  # the owner's live session answered: no orphaning, no card


async def test_a_thread_whose_owner_stalled_past_its_lease_is_taken_and_orphaned_into_the_card(
    worker: Callable[..., Any], pg: PostgresDatabase
) -> None:
    async with worker() as a, worker() as b:
        await a.say("hello")
        thread_id = await thread_id_of(pg)
        await expire_lease(pg, thread_id)

        await b.say("are you there?")
        assert await lease_holder(pg, thread_id) == b.router.ownership.worker_id
        assert len(b.outbox.cards_posted) == 1  # the session died with A's lease: the usual card
        await b.click(CardAction.FRESH)
        assert len(b.outbox.replies) == 1
        assert a.outbox.cards_posted == [] and len(a.outbox.replies) == 1


async def test_fencing_refuses_the_reply_of_a_worker_that_lost_its_lease(
    worker: Callable[..., Any], pg: PostgresDatabase, fake_llm: FakeLLM
) -> None:
    async with worker() as a, worker() as b:
        await a.say("hello")
        thread_id = await thread_id_of(pg)
        await expire_lease(pg, thread_id)
        await b.say("B takes the thread with this one")
        assert len(b.outbox.cards_posted) == 1

        asked = len(fake_llm.requests)
        await a.say("A still thinks it owns the thread")  # A's renewal has not run: only the fence can stop it
        assert len(fake_llm.requests) == asked + 1  # A did run the turn...
        assert len(a.outbox.replies) == 1  # ...but its reply was refused, not posted as answered
        assert await assistant_rows(pg) == [a.outbox.replies[0].text]
        waiting = await pg.fetchall("SELECT content FROM messages WHERE reply_state = 'waiting' ORDER BY id")
        assert [r["content"] for r in waiting] == [
            "B takes the thread with this one",
            "A still thinks it owns the thread",
        ]

        await b.click(CardAction.FRESH)  # the real owner answers both
        assert len(b.outbox.replies) == 1
        assert "A still thinks it owns the thread" in fake_llm.requests[-1].prompt_text


async def test_a_card_click_received_by_a_worker_that_does_not_own_the_thread(
    worker: Callable[..., Any], pg: PostgresDatabase
) -> None:
    async with worker() as earlier:
        await earlier.say("what we said before the restart")
    async with worker() as a, worker() as b:
        await a.say("where were we?")
        assert len(a.outbox.cards_posted) == 1
        card_id = a.outbox.cards_posted[0].card_id

        result = await b.router.handle_click(CardClick(card_id, CardAction.FRESH, BOB, thread=thread_key()))
        assert result.private_note is None  # B acknowledged and won the click in the database
        late = await b.router.handle_click(CardClick(card_id, CardAction.CATCH_UP, ALICE, thread=thread_key()))
        assert late.private_note == "Bob already chose to start fresh."
        await wait_until(lambda: len(a.outbox.replies) == 1, timeout=10, what="the owner answering after the click")
        await a.router.idle()
        assert b.outbox.replies == []
        states = await pg.fetchall("SELECT state FROM cards")
        assert [r["state"] for r in states] == ["fresh"]


async def test_sigterm_hands_the_leases_back_at_once(worker: Callable[..., Any], pg: PostgresDatabase) -> None:
    async with AsyncExitStack() as stack:
        b = await stack.enter_async_context(worker())
        async with worker() as a:
            await a.say("hello")
            thread_id = await thread_id_of(pg)
            assert await lease_holder(pg, thread_id) == a.router.ownership.worker_id
        assert await lease_holder(pg, thread_id) is None  # handed back on the way out, not left to expire

        await b.router.handle_message(message("anyone?"))
        await b.router.idle()
        assert await lease_holder(pg, thread_id) == b.router.ownership.worker_id
        assert len(b.outbox.cards_posted) == 1


async def test_a_waiting_message_of_a_dead_worker_is_found_by_the_poll(
    worker: Callable[..., Any], pg: PostgresDatabase
) -> None:
    async with worker() as earlier:
        await earlier.say("the first message")
    async with worker() as b:
        # Meanwhile a worker logged a second message and died before answering it; nobody writes again.
        await pg.execute(
            "INSERT INTO messages (thread_id, platform_message_id, author_id, author_name, role, content, "
            "reply_state, sent_utc, logged_utc) VALUES (%s, 'm-dead', 'U-alice', 'Alice', 'user', 'unanswered', "
            "'waiting', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')",
            (await thread_id_of(pg),),
        )
        await wait_until(lambda: len(b.outbox.cards_posted) == 1, timeout=10, what="the card from the poll")


async def test_a_reply_that_overtakes_its_mention_to_another_worker_is_looked_up_again_not_ignored(
    worker: Callable[..., Any],
) -> None:
    """Slack spread a mention to A and the quick reply under it to B: B looks once more before ignoring it."""
    async with worker() as a, worker() as b:
        key = thread_key()
        assert not await b.router.is_tracked(key)  # nobody has logged the mention yet
        second_look = asyncio.ensure_future(b.router.is_tracked(key, mention_may_be_in_flight=True))
        await asyncio.sleep(0.2)  # B has looked once (a loopback query) and waits for its second look
        assert not second_look.done()
        await a.say("hello, bot")  # A logs the mention meanwhile
        assert await second_look  # so B takes the reply instead of dropping it


async def test_a_retry_received_by_another_worker_is_done_by_the_owner_and_memory_says_where_it_is(
    worker: Callable[..., Any], pg: PostgresDatabase, fake_llm: FakeLLM
) -> None:
    fake_llm.reply("The first, weak answer.")
    fake_llm.reply("A better answer.")
    async with worker() as a, worker() as b:
        await a.say("Which queue should we use?")
        retry = await b.router.handle_command(Command(thread_key(), CommandName.RETRY, ALICE))
        assert retry.private_note == RETRY_FORWARDED
        await wait_until(lambda: len(a.outbox.replies) == 2, timeout=10, what="the owner's new answer")
        await a.router.idle()
        assert a.outbox.replies_in(thread_key()) == ["The first, weak answer.", "A better answer."]
        assert b.outbox.replies == []
        memory = await b.router.handle_command(Command(thread_key(), CommandName.MEMORY, ALICE))
        assert memory.private_note == MEMORY_ELSEWHERE
    rows = await pg.fetchall("SELECT content, replaced_utc IS NOT NULL AS replaced FROM messages ORDER BY id")
    assert [(r["content"], r["replaced"]) for r in rows] == [
        ("Which queue should we use?", False),
        ("The first, weak answer.", True),
        ("A better answer.", False),
    ]


async def test_a_click_on_a_dead_workers_approval_expires_it_when_the_threads_owner_waits_for_nothing(
    worker: Callable[..., Any], pg: PostgresDatabase
) -> None:
    async with worker() as a, worker() as b:
        await a.say("hello")  # A owns the thread now
        thread_id = await thread_id_of(pg)
        store = ApprovalStore(pg)  # the card a worker posted before it died, its call gone with it
        approval_id = await store.open(thread_id=thread_id, tool="files__write", arguments_preview="{}", now=utc_now())
        await store.set_message_id(approval_id=approval_id, card_message_id="the-dead-workers-card")

        click = ApprovalClick(approval_id, ApprovalAction.ALLOW, BOB, thread=thread_key())
        result = await b.router.handle_approval_click(click)
        await wait_until(lambda: bool(a.outbox.approval_updates), timeout=10, what="the owner's answer to the click")
        [(message_id, card)] = a.outbox.approval_updates
        assert (message_id, card.state, card.decided_by) == ("the-dead-workers-card", ApprovalState.EXPIRED, None)
        assert result.private_note is None and b.outbox.approval_updates == []
        late = await b.router.handle_approval_click(click)
        assert late.private_note == "That request expired when I restarted; nothing was run."
    row = await pg.fetchone("SELECT state, decided_by_name FROM approvals WHERE id = %s", (approval_id,))
    assert row is not None and (row["state"], row["decided_by_name"]) == ("expired", None)


async def test_allow_clicked_at_another_worker_runs_the_call_waiting_in_the_owner(
    worker: Callable[..., Any], pg: PostgresDatabase, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    tools = {"mcp_config": write_config(tmp_path / "mcp.json", {"fake": stdio_entry()}), "llm_function_calling": True}
    async with worker(**tools) as a, worker(**tools) as b:
        await asyncio.wait_for(a.router.tools_settled(), timeout=30)
        fake_llm.call_tools(ScriptedCall("fake__create_ticket", {"title": "Rotate the keys"}))
        fake_llm.reply("Ticket filed.")
        await a.router.handle_message(message("File a ticket to rotate the keys"))
        await wait_until(lambda: bool(a.outbox.approvals_posted), timeout=10, what="the approval card")
        card = a.outbox.approvals_posted[0]

        click = ApprovalClick(card.approval_id, ApprovalAction.ALLOW, BOB, thread=thread_key())
        assert (await b.router.handle_approval_click(click)).private_note is None
        await wait_until(lambda: a.outbox.replies_in(thread_key()) == ["Ticket filed."], timeout=10, what="answer")
        await a.router.idle()
        shown = a.outbox.approval_updates[-1][1]
        assert (shown.state, shown.decided_by) == (ApprovalState.APPROVED, "Bob") and b.outbox.approval_updates == []
    row = await pg.fetchone("SELECT state, decided_by_name FROM approvals")
    assert row is not None and (row["state"], row["decided_by_name"]) == ("approved", "Bob")


async def test_a_retry_at_a_worker_that_lost_the_thread_takes_no_answer_back(
    worker: Callable[..., Any], pg: PostgresDatabase, fake_llm: FakeLLM
) -> None:
    fake_llm.reply("A's answer.")
    async with worker() as a, worker() as b:
        await a.say("Which queue should we use?")
        await expire_lease(pg, await thread_id_of(pg))
        await b.say("B takes the thread with this one")  # A's renewal has not run: A still thinks it owns it

        retry = await a.router.handle_command(Command(thread_key(), CommandName.RETRY, ALICE))
        assert retry.private_note == RETRY_FORWARDED  # the fence refused A's write; the owner is asked instead
        assert a.router.fence(await a.router.thread_state(thread_key())) is None
    rows = await pg.fetchall("SELECT content FROM messages WHERE replaced_utc IS NOT NULL")
    assert rows == []


async def test_after_forget_at_one_worker_every_worker_still_takes_part_in_the_thread(
    worker: Callable[..., Any], pg: PostgresDatabase, fake_llm: FakeLLM
) -> None:
    fake_llm.reply("Noted.")
    async with worker() as a, worker() as b:
        await a.say("a secret plan")
        forgotten = await a.router.handle_forget_click(ForgetClick(await thread_id_of(pg), ALICE, thread=thread_key()))
        assert forgotten.private_note == FORGOTTEN_PRIVATE
        assert await b.router.is_tracked(thread_key())  # what B's adapter asks of a plain message in the thread

        fake_llm.reply("Starting afresh.")
        await b.router.handle_message(message("shall we start over?"))
        await wait_until(lambda: b.outbox.replies_in(thread_key()) == ["Starting afresh."], timeout=10, what="answer")
        await b.router.idle()
    assert "a secret plan" not in fake_llm.requests[-1].prompt_text
    rows = await pg.fetchall("SELECT content FROM messages ORDER BY id")
    assert [r["content"] for r in rows] == ["shall we start over?", "Starting afresh."]


async def test_an_approval_whose_owner_died_is_resumed_by_the_worker_that_gets_the_click(
    worker: Callable[..., Any], pg: PostgresDatabase, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    calls = tmp_path / "calls.txt"
    config = write_config(tmp_path / "mcp.json", {"fake": stdio_entry(env={"FAKE_MCP_CALLS_FILE": str(calls)})})
    tools = {"mcp_config": config, "llm_function_calling": True}
    async with worker(**tools) as a, worker(**tools) as b:
        fake_llm.reply("Hello.")
        await a.say("Hi")  # A owns the thread
        await asyncio.wait_for(a.router.tools_settled(), timeout=30)
        await asyncio.wait_for(b.router.tools_settled(), timeout=30)
        fake_llm.call_tools(ScriptedCall("fake__create_ticket", {"title": "Failover"}, id="call_failover"))
        await a.router.handle_message(message("File Failover"))
        await wait_until(lambda: bool(a.outbox.approvals_posted), timeout=10, what="the approval card")
        card = a.outbox.approvals_posted[0]
        await a.router.close()  # the owner dies while the call waits; its lease runs out
        await expire_lease(pg, await thread_id_of(pg))

        fake_llm.reply("SUMMARY: Alice said hi.")
        fake_llm.reply("Failover ticket filed.")
        click = ApprovalClick(card.approval_id, ApprovalAction.ALLOW, BOB, thread=thread_key())
        assert (await b.router.handle_approval_click(click)).private_note is None
        await wait_until(lambda: b.outbox.replies_in(thread_key()) == ["Failover ticket filed."], timeout=20)
        await b.router.idle()
        assert b.outbox.cards_posted == []  # no "Where were we?" card: the click chose to go on
    assert calls_made(calls) == ["create_ticket Failover"]
    tool = [m for m in fake_llm.requests[-1].body["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool] == ["call_failover"] and "created ticket" in tool[0]["content"]
    row = await pg.fetchone("SELECT state, decided_by_name FROM approvals")
    assert row is not None and (row["state"], row["decided_by_name"]) == ("approved", "Bob")


async def test_a_stop_received_by_a_worker_that_does_not_own_the_thread_stops_the_owners_turn(
    worker: Callable[..., Any], pg: PostgresDatabase, fake_llm: FakeLLM
) -> None:
    fake_llm.chunk_chars = 5
    fake_llm.reply("The first half. The second half, which nobody should ever see.")
    held = fake_llm.pause_after(len("The first half."))
    async with worker() as a, worker() as b:
        await a.router.handle_message(message("explain it all"))
        await wait_until(
            lambda: len(fake_llm.requests) == 1 and bool(a.outbox.session_statuses), timeout=30, what="A answers"
        )
        result = await b.router.handle_stop(StopRequest(thread_key(), BOB))
        assert result.private_note is None  # handed to the owner, not "Nothing to stop."
        await wait_until(lambda: bool(a.outbox.replies), timeout=10, what="A's stopped answer")
        held.set()
        await a.router.idle()
    [answer] = a.outbox.replies_in(thread_key())
    assert answer.startswith("The first half.") and answer.endswith("(Stopped by `Bob`.)") and "second" not in answer
    assert b.outbox.replies == []
    assert [s for _, s in a.outbox.session_statuses][:2] == [SessionStatus.PROCESSING, SessionStatus.ACTIVE]
    assert await assistant_rows(pg) == [answer]
