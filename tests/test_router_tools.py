"""Tools through the router: the real MCP server over stdio, the real litellm, a real SQLite file.

Each thread's turns may call the MCP servers of ``MCP_CONFIG`` and ``search_thread``; calls that need a person
wait on an approval card; every call lands in the trail, which the export and the next catch-up show.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bots.cli import export
from bots.seam.messages import ApprovalAction, ApprovalClick, Author, CardAction
from bots.seam.ports import ApprovalState
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM, ScriptedCall
from tests.fakes.mcp_server import stdio_entry, write_config
from tests.fakes.waiting import wait_until
from tests.router_harness import BOB, Bot, db_rows, message, running_router, thread_key

pytestmark = pytest.mark.slow  # each test starts an MCP server process

CAROL = Author(id="U-carol", display_name="Carol")


@pytest.fixture
def tool_settings(make_settings: MakeSettings, tmp_path: Path) -> MakeSettings:
    config = write_config(tmp_path / "mcp.json", {"fake": stdio_entry()})

    def make(**overrides: object) -> object:
        return make_settings(**{"mcp_config": config, "llm_function_calling": True, **overrides})

    return make  # type: ignore[return-value]


def tool_messages(fake: FakeLLM) -> list[str]:
    """Every distinct tool result the model was sent, in order (later requests repeat the history's)."""
    sent = [m["content"] for r in fake.requests for m in r.body["messages"] if m.get("role") == "tool"]
    return list(dict.fromkeys(sent))


async def ready(bot: Bot) -> None:
    await asyncio.wait_for(bot.router.tools_settled(), timeout=30)


async def test_a_call_its_result_and_the_answer_with_progress_shown_and_the_trail_kept(
    tool_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tool_settings()
    async with running_router(settings) as bot:
        await ready(bot)
        fake_llm.call_tools(ScriptedCall("fake__lookup", {"key": "colour"}))
        fake_llm.reply("The colour is 42.")
        await bot.say("What is the colour?")
        assert bot.outbox.replies_in(thread_key()) == ["The colour is 42."]
        assert (thread_key(), "Running fake__lookup…") in bot.outbox.statuses
        assert bot.outbox.statuses[-1] == (thread_key(), None)
        assert bot.outbox.approvals_posted == []  # read-only: no approval asked
    offered = fake_llm.requests[0].tool_names
    assert "fake__lookup" in offered and "search_thread" in offered
    assert tool_messages(fake_llm) == ["value of colour is 42"]
    trail = db_rows(db_path, "SELECT tool, arguments_json, result_excerpt, approval FROM tool_calls")
    assert [tuple(r) for r in trail] == [("fake__lookup", '{"key": "colour"}', "value of colour is 42", "not_needed")]
    assert await export(settings, thread_key().thread, "md") == 0
    exported = capsys.readouterr().out
    assert "fake__lookup" in exported and "value of colour is 42" in exported
    fake_llm.reply("SUMMARY: looked up the colour.")
    fake_llm.reply("Still 42.")
    async with running_router(settings) as bot:
        await bot.say("And again?")
        await bot.click(CardAction.CATCH_UP)
    summary = next(r for r in fake_llm.requests if not r.stream).prompt_text
    assert '<tool_call name="fake__lookup" outcome="ok">' in summary and "value of colour is 42" in summary


async def test_search_thread_quotes_a_detail_the_catch_up_summary_left_out(
    tool_settings: MakeSettings, fake_llm: FakeLLM
) -> None:
    settings = tool_settings(mcp_config=None)
    fake_llm.reply_with(lambda body: "Noted.")
    async with running_router(settings) as bot:
        await bot.say("The staging database listens on port 5433.")
        await bot.say("Lunch is at noon.", thread=thread_key("other"))
    async with running_router(settings) as bot:
        await bot.say("Which port was it?")
        fake_llm.reply("SUMMARY: the staging database was discussed.")
        fake_llm.call_tools(ScriptedCall("search_thread", {"query": "staging port"}))
        fake_llm.reply("Port 5433.")
        await bot.click(CardAction.CATCH_UP)
        assert bot.outbox.replies_in(thread_key()) == ["Port 5433."]
    [result] = tool_messages(fake_llm)
    assert "Alice: The staging database listens on port 5433." in result
    assert "Lunch" not in result  # never another thread


async def test_a_side_effecting_call_waits_for_allow_and_the_first_click_wins(
    tool_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with running_router(tool_settings()) as bot:
        await ready(bot)
        fake_llm.call_tools(ScriptedCall("fake__create_ticket", {"title": "Rotate the keys"}))
        fake_llm.reply("Ticket filed.")
        await bot.router.handle_message(message("File a ticket to rotate the keys"))
        await wait_until(lambda: bool(bot.outbox.approvals_posted), what="the approval card")
        card = bot.outbox.approvals_posted[0]
        assert card.tool == "fake__create_ticket" and "Rotate the keys" in card.arguments_json
        allow = ApprovalClick(card.approval_id, ApprovalAction.ALLOW, BOB, thread=thread_key())
        deny = ApprovalClick(card.approval_id, ApprovalAction.DENY, CAROL, thread=thread_key())
        clicks = bot.router.handle_approval_click(allow), bot.router.handle_approval_click(deny)
        first, second = await asyncio.gather(*clicks)
        await bot.router.idle()
        assert first.private_note is None and second.private_note == "Bob already allowed that call."
        assert bot.outbox.replies_in(thread_key()) == ["Ticket filed."]
        shown = bot.outbox.approval_updates[-1][1]
        assert shown.state is ApprovalState.APPROVED and shown.decided_by == "Bob" and not shown.buttons_live
    [result] = tool_messages(fake_llm)
    assert "Rotate the keys" in result
    rows = db_rows(db_path, "SELECT state, decided_by_name FROM approvals")
    assert [tuple(r) for r in rows] == [("approved", "Bob")]
    assert db_rows(db_path, "SELECT approval, decided_by FROM tool_calls")[0][:] == ("approved", "Bob")


async def test_deny_and_no_answer_in_time_both_tell_the_model_the_call_was_refused(
    tool_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with running_router(tool_settings(approval_timeout_s=0.5)) as bot:
        await ready(bot)
        fake_llm.call_tools(ScriptedCall("fake__create_ticket", {"title": "first"}))
        fake_llm.reply("Understood, not filed.")
        await bot.router.handle_message(message("File one"))
        await wait_until(lambda: len(bot.outbox.approvals_posted) == 1, what="the first card")
        card = bot.outbox.approvals_posted[0]
        await bot.router.handle_approval_click(
            ApprovalClick(card.approval_id, ApprovalAction.DENY, BOB, thread=thread_key())
        )
        await bot.router.idle()
        fake_llm.call_tools(ScriptedCall("fake__create_ticket", {"title": "second"}))
        fake_llm.reply("Nobody approved it.")
        await bot.say("File another")  # nobody clicks this time
        assert bot.outbox.approval_updates[-1][1].state is ApprovalState.TIMED_OUT
    denied, unanswered = tool_messages(fake_llm)
    assert "refused by Bob" in denied and "did not run" in denied
    assert "refused" in unanswered and "nobody answered in time" in unanswered
    rows = db_rows(db_path, "SELECT approval FROM tool_calls ORDER BY id")
    assert [r[0] for r in rows] == ["denied", "timed_out"]


# An approval card across a restart: tests/test_turn_journal.py (the card outlives the process).
