"""A tool turn cut short resumes exactly once: the router, the real MCP server over stdio, litellm, a SQLite file.

The first router dies (it is closed while the model's next step is under way, its tasks cancelled) after a
side-effecting call ran; the second finds the thread orphaned, and Catch me up resumes the turn from the journal
instead of starting it again, or Start fresh drops it. The MCP server writes a line per call that really ran.
A call cut short *while it runs* needs a real SIGKILL (a polite close ends the call as failed): that and the
other kills are in tests/test_kill_and_restart.py.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bots.cli import export
from bots.seam.messages import ApprovalAction, ApprovalClick, CardAction
from bots.seam.ports import CardState
from bots.tools.journal import resumed_steps
from storage.records import JournalCall, JournalStep
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM, ScriptedCall
from tests.fakes.mcp_server import calls_made, stdio_entry, write_config
from tests.fakes.waiting import wait_until
from tests.router_harness import BOB, Bot, db_rows, db_write, message, running_router, thread_key

pytestmark = pytest.mark.slow  # each test starts MCP server processes


@pytest.fixture
def calls_file(tmp_path: Path) -> Path:
    return tmp_path / "mcp-calls.txt"


@pytest.fixture
def tool_settings(make_settings: MakeSettings, tmp_path: Path, calls_file: Path) -> MakeSettings:
    entry = stdio_entry(env={"FAKE_MCP_CALLS_FILE": str(calls_file)})
    config = write_config(tmp_path / "mcp.json", {"fake": entry})

    def make(**overrides: object) -> object:
        return make_settings(**{"mcp_config": config, "llm_function_calling": True, **overrides})

    return make  # type: ignore[return-value]


async def allow_the_card(bot: Bot) -> None:
    await wait_until(lambda: bool(bot.outbox.approvals_posted), what="the approval card")
    card = bot.outbox.approvals_posted[-1]
    await bot.router.handle_approval_click(
        ApprovalClick(card.approval_id, ApprovalAction.ALLOW, BOB, thread=thread_key())
    )


def call_states(db_path: Path) -> list[tuple[str, str]]:
    return [tuple(r) for r in db_rows(db_path, "SELECT tool, state FROM tool_calls ORDER BY id")]  # type: ignore[misc]


def continuing_messages(fake_llm: FakeLLM) -> list[dict[str, object]]:
    """The messages of the last streamed request, without the system prompt."""
    request = [r for r in fake_llm.requests if r.stream][-1]
    return [m for m in request.body["messages"] if m["role"] != "system"]


async def test_catch_me_up_resumes_after_a_completed_call_without_running_it_again(
    tool_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path, calls_file: Path
) -> None:
    settings = tool_settings()
    async with running_router(settings) as bot:
        fake_llm.reply("Hello.")
        await bot.say("Hi")  # the thread has a past: after the restart it gets the card
        await asyncio.wait_for(bot.router.tools_settled(), timeout=30)
        fake_llm.call_tools(ScriptedCall("fake__create_ticket", {"title": "Rotate the keys"}, id="call_rot"))
        await bot.router.handle_message(message("File a ticket to rotate the keys"))
        await wait_until(lambda: bool(bot.outbox.approvals_posted), what="the approval card")
        fake_llm.hang(120)  # the model's next step never ends: the process dies during it
        await allow_the_card(bot)
        await wait_until(lambda: call_states(db_path) == [("fake__create_ticket", "done")], what="the done row")
        await wait_until(lambda: len([r for r in fake_llm.requests if r.stream]) >= 3, what="the next step")
        await bot.router.close()
    assert calls_made(calls_file) == ["create_ticket Rotate the keys"]
    fake_llm.clear_faults()
    async with running_router(settings) as bot:
        await asyncio.wait_for(bot.router.tools_settled(), timeout=30)
        await bot.say("are you back?")
        fake_llm.reply("SUMMARY: nothing yet.")
        fake_llm.reply("Filed: ticket #1, rotate the keys.")
        await bot.click(CardAction.CATCH_UP)
        assert bot.outbox.replies_in(thread_key()) == ["Filed: ticket #1, rotate the keys."]
    assert calls_made(calls_file) == ["create_ticket Rotate the keys"]  # exactly once
    sent = continuing_messages(fake_llm)
    assert [m["role"] for m in sent] == ["user", "user", "assistant", "tool"]
    assert [m["content"] for m in sent[:2]] == ["Alice: File a ticket to rotate the keys", "Alice: are you back?"]
    assert [c["id"] for c in sent[2]["tool_calls"]] == ["call_rot"]  # type: ignore[index]
    assert sent[3]["tool_call_id"] == "call_rot" and "created ticket #1: Rotate the keys" in str(sent[3]["content"])
    assert db_rows(db_path, "SELECT COUNT(*) FROM turn_steps WHERE closed_utc IS NULL")[0][0] == 0


async def test_start_fresh_drops_the_interrupted_turn_but_keeps_it_in_the_log(
    tool_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path, calls_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tool_settings()
    async with running_router(settings) as bot:
        fake_llm.reply("Hello.")
        await bot.say("Hi")  # the thread has a past: after the restart it gets the card
        await asyncio.wait_for(bot.router.tools_settled(), timeout=30)
        fake_llm.call_tools(ScriptedCall("fake__create_ticket", {"title": "Once"}, id="call_once"))
        await bot.router.handle_message(message("File Once"))
        await wait_until(lambda: bool(bot.outbox.approvals_posted), what="the approval card")
        fake_llm.hang(120)
        await allow_the_card(bot)
        await wait_until(lambda: call_states(db_path) == [("fake__create_ticket", "done")], what="the done row")
        await bot.router.close()
    fake_llm.clear_faults()
    async with running_router(settings) as bot:
        await bot.say("again")
        fake_llm.reply("Starting over.")
        await bot.click(CardAction.FRESH)
        assert bot.outbox.replies_in(thread_key()) == ["Starting over."]
    assert [m["role"] for m in continuing_messages(fake_llm)] == ["user", "user"]  # after the summary: what waited
    assert call_states(db_path) == [("fake__create_ticket", "done")]  # still in the log and the export
    assert calls_made(calls_file) == ["create_ticket Once"]
    capsys.readouterr()
    assert await export(settings, thread_key().thread, "json") == 0
    [exported] = json.loads(capsys.readouterr().out)["tool_calls"]
    assert (exported["tool"], exported["state"], exported["approval"]) == ("fake__create_ticket", "done", "approved")


@pytest.mark.parametrize(
    ("action", "timeout_s", "ran", "told", "asker_clock_behind_s"),
    [
        (ApprovalAction.ALLOW, 600.0, True, "created ticket #1: Card", 0),
        (ApprovalAction.DENY, 600.0, False, "refused by Bob", 0),
        (ApprovalAction.ALLOW, 3.0, False, "nobody answered in time", 0),
        # The worker that asked had a clock a day behind; the timeout counts by the database's clock all the same.
        (ApprovalAction.ALLOW, 600.0, True, "created ticket #1: Card", 86_400),
    ],
    ids=["allow", "deny", "timed-out", "asker-clock-a-day-behind"],
)
async def test_an_approval_card_outlives_a_restart_and_its_click_resumes_the_turn(
    tool_settings: MakeSettings,
    fake_llm: FakeLLM,
    db_path: Path,
    calls_file: Path,
    action: ApprovalAction,
    timeout_s: float,
    ran: bool,
    told: str,
    asker_clock_behind_s: int,
) -> None:
    settings = tool_settings(approval_timeout_s=timeout_s)
    async with running_router(settings) as bot:
        fake_llm.reply("Hello.")
        await bot.say("Hi")
        await asyncio.wait_for(bot.router.tools_settled(), timeout=30)
        fake_llm.call_tools(ScriptedCall("fake__create_ticket", {"title": "Card"}, id="call_card"))
        await bot.router.handle_message(message("File Card"))
        await wait_until(lambda: bool(bot.outbox.approvals_posted), what="the approval card")
        card = bot.outbox.approvals_posted[0]
        await wait_until(lambda: call_states(db_path) == [("fake__create_ticket", "waiting")], what="the waiting row")
        await bot.router.close()  # the process dies while the call waits
    if asker_clock_behind_s:
        behind = datetime.now(UTC) - timedelta(seconds=asker_clock_behind_s)
        assert db_write(db_path, "UPDATE approvals SET created_utc = ?", (behind.isoformat(),)) == 1
    if timeout_s < 60:
        await asyncio.sleep(timeout_s)  # the card's time runs out while no process is there
    async with running_router(settings) as bot:
        await asyncio.wait_for(bot.router.tools_settled(), timeout=30)
        fake_llm.reply("SUMMARY: Alice said hi.")
        fake_llm.reply("Done with the ticket question.")
        click = ApprovalClick(card.approval_id, action, BOB, thread=thread_key())
        result = await bot.router.handle_approval_click(click)
        await bot.router.idle()
        assert bot.outbox.replies_in(thread_key()) == ["Done with the ticket question."]
        if timeout_s > 60:
            assert bot.outbox.cards_posted == []  # no "Where were we?" card in that thread
            assert result.private_note is None
        else:  # a card whose time ran out no longer holds the thread: it got its card, which the click resolves
            assert result.private_note == "That request timed out; the call was not made."
            assert bot.outbox.card_updates[-1][1].state is CardState.CAUGHT_UP
            assert bot.outbox.card_updates[-1][1].chosen_by == "Bob"
    assert calls_made(calls_file) == (["create_ticket Card"] if ran else [])
    sent = continuing_messages(fake_llm)
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[2]["tool_call_id"] == "call_card" and told in str(sent[2]["content"])
    expected = "done" if ran else "denied" if action is ApprovalAction.DENY else "expired"
    assert call_states(db_path) == [("fake__create_ticket", expected)]


def test_what_an_interrupted_turn_replays_runs_again_or_reports_unknown_for_each_call_state() -> None:
    def row(call_id: str, tool: str, state: str, **kw: object) -> JournalCall:
        fields: dict[str, object] = {"result": "", "is_error": False, "decided_by": None} | kw
        return JournalCall(call_id, tool, "{}", state, **fields)  # type: ignore[arg-type]

    step = JournalStep(7, 3, "Let me see.", (
        row("a", "fake__lookup", "done", result="42"),
        row("b", "fake__create_ticket", "denied", result="refused", is_error=True, decided_by="Bob"),
        row("c", "fake__lookup", "running"),
        row("d", "fake__create_ticket", "running"),
        row("e", "fake__create_ticket", "allowed"),
        row("f", "fake__create_ticket", "waiting", approval_id=12),
        row("g", "fake__create_ticket", "requested"),
    ))  # fmt: skip
    found = resumed_steps([step], read_only=lambda tool: tool == "fake__lookup")
    [resumed] = found.steps
    assert resumed.text == "Let me see." and [c.id for c in resumed.calls] == list("abcdefg")
    replayed = {c.id: r for c, r in zip(resumed.calls, resumed.results, strict=True)}
    assert replayed["a"] is not None and replayed["a"].text == "42"  # ended: replayed, never run again
    assert replayed["b"] is not None and replayed["b"].approved is False and replayed["b"].decided_by == "Bob"
    assert replayed["c"] is None  # read-only and running: run again
    assert replayed["d"] is not None and "may or may not have taken effect" in replayed["d"].text  # not re-run
    assert [r is None for r in (replayed["e"], replayed["f"], replayed["g"])] == [True, True, True]  # run now
    assert [c.call_id for c in found.unknown] == ["d"]
    assert found.allowed == {"e": None} and found.cards == {"f": 12}
