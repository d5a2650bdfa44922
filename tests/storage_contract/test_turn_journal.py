"""The turn journal's contract, on both backends: a tool turn's steps and call states, as the trail shows them."""

from __future__ import annotations

import json

from storage.backends import Storage
from storage.records import JournalCall
from tests.storage_contract.conftest import NOW, new_thread, say

CALLS = [("c1", "fake__create_ticket", '{"title": "printer"}'), ("c2", "fake__lookup", '{"key": "a"}')]


async def test_a_step_and_its_calls_move_through_their_states_and_show_in_the_trail(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    question = await say(storage, thread_id, "m1", "file a ticket")
    journal = storage.journal
    step = await journal.open_step(thread_id=thread_id, after_message_id=question, text="On it.", calls=CALLS, now=NOW)
    await journal.set_waiting(step_id=step, call_id="c1", approval_id=5)
    await journal.set_state(step_id=step, call_id="c1", state="running")
    await journal.finish(
        step_id=step, call_id="c2", state="done", result="a is 1", is_error=False, duration_ms=3,
        approval="not_needed", decided_by=None, cites=(),
    )  # fmt: skip
    [opened] = await journal.open_turn(thread_id=thread_id)
    assert (opened.id, opened.after_message_id, opened.text) == (step, question, "On it.")
    assert opened.calls == (
        JournalCall("c1", "fake__create_ticket", '{"title": "printer"}', "running", "", False, None, 5),
        JournalCall("c2", "fake__lookup", '{"key": "a"}', "done", "a is 1", False, None),
    )
    trail = await storage.trail.for_thread(thread_id=thread_id)
    assert [(e.tool, e.state, e.after_message_id) for e in trail] == [
        ("fake__create_ticket", "running", question),
        ("fake__lookup", "done", question),
    ]
    assert json.loads(trail[0].arguments_json) == {"title": "printer"}


async def test_a_closed_turn_is_no_longer_open_but_stays_in_the_trail(storage: Storage) -> None:
    thread_id, other = await new_thread(storage), await new_thread(storage, "other")
    question = await say(storage, thread_id, "m1", "file a ticket")
    journal = storage.journal
    first = await journal.open_step(thread_id=thread_id, after_message_id=question, text="", calls=CALLS[:1], now=NOW)
    second = await journal.open_step(
        thread_id=thread_id, after_message_id=question, text="and", calls=CALLS[1:], now=NOW
    )
    await journal.open_step(thread_id=other, after_message_id=question, text="", calls=CALLS[:1], now=NOW)
    assert [s.id for s in await journal.open_turn(thread_id=thread_id)] == [first, second]
    assert await journal.close_turn(thread_id=thread_id, now=NOW) == 2
    assert await journal.open_turn(thread_id=thread_id) == []
    assert await journal.close_turn(thread_id=thread_id, now=NOW) == 0
    assert len(await journal.open_turn(thread_id=other)) == 1  # another thread's turn is its own
    assert len(await storage.trail.for_thread(thread_id=thread_id)) == 2


async def test_forgetting_reaches_the_journal(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    question = await say(storage, thread_id, "m1", "file a ticket about the printer")
    step = await storage.journal.open_step(
        thread_id=thread_id, after_message_id=question, text="", calls=CALLS[:1], now=NOW
    )
    await storage.journal.finish(
        step_id=step, call_id="c1", state="done", result="ticket 7: the printer", is_error=False, duration_ms=3,
        approval="approved", decided_by="Bob", cites=(),
    )  # fmt: skip
    await storage.erasures.delete_message(thread_id=thread_id, platform_message_id="m1", deleted_utc=NOW)
    [call] = (await storage.journal.open_turn(thread_id=thread_id))[0].calls
    assert "printer" not in call.arguments_json and "printer" not in call.result
    await storage.erasures.forget_thread(thread_id=thread_id, now=NOW)
    assert await storage.journal.open_turn(thread_id=thread_id) == []


async def test_a_step_can_be_written_with_its_first_call_already_running(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    question = await say(storage, thread_id, "m1", "look it up")
    await storage.journal.open_step(
        thread_id=thread_id, after_message_id=question, text="", calls=CALLS, now=NOW, running="c2"
    )
    [step] = await storage.journal.open_turn(thread_id=thread_id)
    assert [(c.call_id, c.state) for c in step.calls] == [("c1", "requested"), ("c2", "running")]
