"""`threadkeeper run` as a real process against the fakes: SIGKILL mid-reply, start again, get the card.

Nothing is shut down politely here: the process dies while it is streaming an answer, exactly as on an OOM kill
or a power cut, and the next process must find the thread orphaned, log nothing twice, and still answer.
"""

from __future__ import annotations

import asyncio
import copy
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.discord.conftest import button, buttons
from tests.fakes.bot_process import (
    ANSWER_S,
    bot_process,
    discord_env,
    last_streamed,
    llm_env,
    slack_buttons,
    slack_env,
    slack_said,
    tools_env,
)
from tests.fakes.discord import FakeDiscord
from tests.fakes.llm import FakeLLM, ScriptedCall
from tests.fakes.mcp_server import calls_made
from tests.fakes.slack import FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # two cold starts of the bot on a loaded machine


async def test_discord_process_killed_mid_reply_restarts_into_the_card(tmp_path: Path, fake_llm: FakeLLM) -> None:
    log = tmp_path / "bot.log"
    async with FakeDiscord() as fake:
        env = llm_env(fake_llm, tmp_path) | discord_env(fake)
        fake_llm.chunk_delay_s = 0.2
        fake_llm.reply("This answer streams slowly and will never finish because the process dies. " * 3)
        async with bot_process(env, log) as first:
            await wait_until(lambda: fake.identified == 1, timeout=60)
            message = await fake.user_says("tell me a long story", mention_bot=True)
            thread = str(message["id"])
            # mid-stream: part of the slow answer is shown, so the model has its request
            await wait_until(
                lambda: any(t.startswith("This answer streams") for t in fake.texts_in(thread)), timeout=ANSWER_S
            )
            first.send_signal(signal.SIGKILL)
            assert await first.wait() == -signal.SIGKILL
        fake_llm.chunk_delay_s = 0.0
        async with bot_process(env, log) as second:
            await wait_until(lambda: fake.identified == 2, timeout=60)
            await fake.user_says("are you back?", channel_id=thread)
            await wait_until(lambda: len(fake.cards_in(thread)) == 1, timeout=ANSWER_S)
            card = fake.cards_in(thread)[0]
            fake_llm.reply("Yes, starting fresh.")
            custom_id = next(
                b["custom_id"]
                for row in card["components"]
                for b in row["components"]
                if b["custom_id"].endswith("fresh")
            )
            await fake.click(custom_id, message=card)
            await wait_until(lambda: "Yes, starting fresh." in fake.texts_in(thread), timeout=ANSWER_S)
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), timeout=30) == 0
    users = db_rows(tmp_path / "bot.db", "SELECT content, reply_state FROM messages WHERE role = 'user' ORDER BY id")
    assert [tuple(r) for r in users] == [("tell me a long story", "answered"), ("are you back?", "answered")]
    assert "fake-token" not in log.read_text()
    assert db_rows(tmp_path / "bot.db", "PRAGMA integrity_check")[0][0] == "ok"


async def test_slack_process_killed_mid_reply_restarts_into_the_card(tmp_path: Path, fake_llm: FakeLLM) -> None:
    log = tmp_path / "bot.log"
    async with FakeSlack() as fake:
        env = llm_env(fake_llm, tmp_path) | slack_env(fake)
        fake_llm.reply("Once upon a time there was a queue.")
        mention = Payloads.mention("tell me a story")
        async with bot_process(env, log) as first:
            await wait_until(lambda: fake.connected == 1, timeout=60)
            await fake.send(Payloads.event_body(mention))
            await wait_until(
                lambda: any(
                    fake.final_text(c.params["_ts"]) == "Once upon a time there was a queue." for c in fake.posts()
                ),
                timeout=ANSWER_S,
            )
            fake_llm.chunk_delay_s = 0.2
            fake_llm.reply("A slow answer that the SIGKILL interrupts halfway through its sentences. " * 3)
            await fake.send(Payloads.event_body(Payloads.message("and then?", thread_ts=mention["ts"])))
            # mid-stream: part of the slow answer is shown (an update may come earlier, for the status line), so the
            # model has its request and the catch-up below cannot be handed the slow answer
            await wait_until(
                lambda: any(fake.final_text(c.params["_ts"]).startswith("A slow answer") for c in fake.posts()),
                timeout=ANSWER_S,
            )
            first.send_signal(signal.SIGKILL)
            await first.wait()
        fake_llm.chunk_delay_s = 0.0
        async with bot_process(env, log) as second:
            await wait_until(
                lambda: fake.connected == 1 and len(fake.calls_to("apps.connections.open")) == 2, timeout=60
            )
            await fake.send(Payloads.event_body(Payloads.message("are you back?", thread_ts=mention["ts"])))
            await wait_until(lambda: any(c.params.get("blocks") for c in fake.posts()), timeout=ANSWER_S)
            card = next(c for c in fake.posts() if c.params.get("blocks"))
            value = card.params["blocks"][1]["elements"][0]["value"]
            fake_llm.reply("SUMMARY: Alice asked for a story about a queue.")
            fake_llm.reply("Caught up: the queue story continues.")
            await fake.send(Payloads.click(value, thread_ts=mention["ts"]), kind="interactive")
            await wait_until(
                lambda: any(
                    fake.final_text(c.params["_ts"]) == "Caught up: the queue story continues." for c in fake.posts()
                ),
                timeout=ANSWER_S,
            )
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), timeout=30) == 0
    users = db_rows(tmp_path / "bot.db", "SELECT content, reply_state FROM messages WHERE role = 'user' ORDER BY id")
    assert [tuple(r) for r in users] == [
        ("tell me a story", "answered"),
        ("and then?", "answered"),
        ("are you back?", "answered"),
    ]
    assert len([c for c in fake.posts() if c.params.get("blocks")]) == 1
    summary = next(r for r in fake_llm.requests if not r.stream)
    assert "tell me a story" in summary.prompt_text and "and then?" not in summary.prompt_text
    assert [m["content"] for m in fake_llm.requests[-1].body["messages"][-2:]] == [
        "Alice: and then?",
        "Alice: are you back?",
    ]
    text = log.read_text()
    assert "xoxb-secret-token" not in text and "xapp-secret-token" not in text


# -- an interrupted tool turn resumes exactly once (issue 20) -------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def backend_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Nothing more for SQLite (the file of ``llm_env``); a new Postgres database otherwise."""
    if request.param == "sqlite":
        return {}
    return {"DATABASE_URL": str(request.getfixturevalue("postgres_url"))}


async def discord_tool_turn_killed(
    fake: FakeDiscord, fake_llm: FakeLLM, env: dict[str, str], log: Path, call: ScriptedCall, *, killed_when: Any
) -> str:
    """A Discord thread whose tool turn is SIGKILLed once ``killed_when()`` holds, after Allow; its id."""
    async with bot_process(env, log) as first:
        await wait_until(lambda: fake.identified == 1, timeout=60)
        fake_llm.reply("Hello.")
        message = await fake.user_says("hi", mention_bot=True)
        thread = str(message["id"])
        await wait_until(lambda: "Hello." in fake.texts_in(thread), timeout=ANSWER_S)
        fake_llm.call_tools(call)
        await fake.user_says("file a ticket", channel_id=thread)
        await wait_until(lambda: any(buttons(m) for m in fake.sent_in(thread)), timeout=60)
        card = copy.deepcopy(next(m for m in fake.sent_in(thread) if buttons(m)))
        fake_llm.hang(120)  # the model's next step never ends
        await fake.click(button(card, "allow"), message=card)
        await wait_until(killed_when, timeout=ANSWER_S)
        first.send_signal(signal.SIGKILL)
        assert await first.wait() == -signal.SIGKILL
    fake_llm.clear_faults()
    return thread


async def discord_catch_up(fake: FakeDiscord, fake_llm: FakeLLM, env: dict[str, str], log: Path, thread: str) -> None:
    """Restart, write in the thread, click Catch me up, and wait for the answer the fake model gives."""
    async with bot_process(env, log) as second:
        await wait_until(lambda: fake.identified == 2, timeout=60)
        await fake.user_says("are you back?", channel_id=thread)
        await wait_until(lambda: len(fake.cards_in(thread)) == 1, timeout=ANSWER_S)
        card = fake.cards_in(thread)[0]
        fake_llm.reply("SUMMARY: Alice said hi.")
        fake_llm.reply("Back: the ticket is handled.")
        await fake.click(button(card, "catch_up"), message=card)
        await wait_until(lambda: "Back: the ticket is handled." in fake.texts_in(thread), timeout=60)
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), timeout=30) == 0


async def test_discord_killed_after_an_approved_call_completed_resumes_it_once_at_catch_up(
    tmp_path: Path, fake_llm: FakeLLM, backend_env: dict[str, str]
) -> None:
    log, calls = tmp_path / "bot.log", tmp_path / "calls.txt"
    async with FakeDiscord() as fake:
        env = llm_env(fake_llm, tmp_path) | tools_env(tmp_path, calls) | backend_env | discord_env(fake)
        call = ScriptedCall("fake__create_ticket", {"title": "Rotate"}, id="call_rotate")
        thread = await discord_tool_turn_killed(
            fake, fake_llm, env, log, call,
            killed_when=lambda: bool(calls_made(calls)) and len([r for r in fake_llm.requests if r.stream]) == 3,
        )  # fmt: skip
        await discord_catch_up(fake, fake_llm, env, log, thread)
    assert calls_made(calls) == ["create_ticket Rotate"]  # the MCP server saw exactly one call
    sent = last_streamed(fake_llm)
    assert [m["role"] for m in sent] == ["user", "user", "assistant", "tool"]
    assert [c["id"] for c in sent[2]["tool_calls"]] == ["call_rotate"] and sent[3]["tool_call_id"] == "call_rotate"
    assert "created ticket #1: Rotate" in sent[3]["content"]


async def test_discord_killed_while_a_side_effecting_call_ran_does_not_run_it_again(
    tmp_path: Path, fake_llm: FakeLLM, backend_env: dict[str, str]
) -> None:
    log, calls = tmp_path / "bot.log", tmp_path / "calls.txt"
    async with FakeDiscord() as fake:
        env = llm_env(fake_llm, tmp_path) | tools_env(tmp_path, calls) | backend_env | discord_env(fake)
        call = ScriptedCall("fake__slow_ticket", {"title": "T-9", "seconds": 120}, id="call_slow")
        thread = await discord_tool_turn_killed(
            fake, fake_llm, env, log, call, killed_when=lambda: bool(calls_made(calls))
        )
        await discord_catch_up(fake, fake_llm, env, log, thread)
        assert any("I restarted while fake__slow_ticket was running" in t for t in fake.texts_in(thread))
    assert calls_made(calls) == ["slow_ticket T-9"]  # not run again
    sent = last_streamed(fake_llm)
    assert [m["role"] for m in sent] == ["user", "user", "assistant", "tool"]
    assert sent[3]["tool_call_id"] == "call_slow" and "may or may not have taken effect" in sent[3]["content"]


@pytest.mark.parametrize("running", [False, True], ids=["completed", "running"])
async def test_slack_killed_in_a_tool_turn_resumes_it_at_catch_up_without_running_a_call_twice(
    tmp_path: Path, fake_llm: FakeLLM, backend_env: dict[str, str], running: bool
) -> None:
    log, calls = tmp_path / "bot.log", tmp_path / "calls.txt"
    if running:
        call = ScriptedCall("fake__slow_ticket", {"title": "T-9", "seconds": 120}, id="call_t9")
        killed_when = lambda: bool(calls_made(calls))  # noqa: E731
    else:
        call = ScriptedCall("fake__create_ticket", {"title": "Rotate"}, id="call_t9")
        killed_when = lambda: bool(calls_made(calls)) and len([r for r in fake_llm.requests if r.stream]) == 3  # noqa: E731
    async with FakeSlack() as fake:
        env = llm_env(fake_llm, tmp_path) | tools_env(tmp_path, calls) | backend_env | slack_env(fake)
        mention = Payloads.mention("hi")
        thread = mention["ts"]
        async with bot_process(env, log) as first:
            await wait_until(lambda: fake.connected == 1, timeout=60)
            fake_llm.reply("Hello.")
            await fake.send(Payloads.event_body(mention))
            await wait_until(lambda: slack_said(fake, "Hello."), timeout=ANSWER_S)
            fake_llm.call_tools(call)
            await fake.send(Payloads.event_body(Payloads.message("file a ticket", thread_ts=thread)))
            await wait_until(lambda: bool(slack_buttons(fake, "allow")), timeout=60)
            fake_llm.hang(120)
            await fake.send(fake.click_on(slack_buttons(fake, "allow")[0]), kind="interactive")
            await wait_until(killed_when, timeout=ANSWER_S)
            first.send_signal(signal.SIGKILL)
            await first.wait()
        fake_llm.clear_faults()
        async with bot_process(env, log) as second:
            await wait_until(
                lambda: fake.connected == 1 and len(fake.calls_to("apps.connections.open")) == 2, timeout=60
            )
            await fake.send(Payloads.event_body(Payloads.message("are you back?", thread_ts=thread)))
            await wait_until(lambda: bool(slack_buttons(fake, "catch_up")), timeout=ANSWER_S)
            fake_llm.reply("SUMMARY: Alice said hi.")
            fake_llm.reply("Back: the ticket is handled.")
            await fake.send(fake.click_on(slack_buttons(fake, "catch_up")[0]), kind="interactive")
            await wait_until(lambda: slack_said(fake, "Back: the ticket is handled."), timeout=60)
            assert slack_said(fake, "I restarted while fake__slow_ticket was running") == running
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), timeout=30) == 0
    assert calls_made(calls) == (["slow_ticket T-9"] if running else ["create_ticket Rotate"])  # exactly once
    sent = last_streamed(fake_llm)
    assert [m["role"] for m in sent] == ["user", "user", "assistant", "tool"]
    assert [c["id"] for c in sent[2]["tool_calls"]] == ["call_t9"] and sent[3]["tool_call_id"] == "call_t9"
    expected = "may or may not have taken effect" if running else "created ticket #1: Rotate"
    assert expected in sent[3]["content"]


async def test_discord_approval_card_posted_before_a_sigkill_is_allowed_after_the_restart(
    tmp_path: Path, fake_llm: FakeLLM, backend_env: dict[str, str]
) -> None:
    log, calls = tmp_path / "bot.log", tmp_path / "calls.txt"
    async with FakeDiscord() as fake:
        env = llm_env(fake_llm, tmp_path) | tools_env(tmp_path, calls) | backend_env | discord_env(fake)
        async with bot_process(env, log) as first:
            await wait_until(lambda: fake.identified == 1, timeout=60)
            fake_llm.reply("Hello.")
            message = await fake.user_says("hi", mention_bot=True)
            thread = str(message["id"])
            await wait_until(lambda: "Hello." in fake.texts_in(thread), timeout=ANSWER_S)
            fake_llm.call_tools(ScriptedCall("fake__create_ticket", {"title": "Later"}, id="call_later"))
            await fake.user_says("file a ticket", channel_id=thread)
            await wait_until(lambda: any(buttons(m) for m in fake.sent_in(thread)), timeout=60)
            card = copy.deepcopy(next(m for m in fake.sent_in(thread) if buttons(m)))
            first.send_signal(signal.SIGKILL)
            assert await first.wait() == -signal.SIGKILL
        async with bot_process(env, log) as second:
            await wait_until(lambda: fake.identified == 2, timeout=60)
            fake_llm.reply("SUMMARY: Alice said hi.")
            fake_llm.reply("Filed the ticket for later.")
            await fake.click(button(card, "allow"), message=card)
            await wait_until(lambda: "Filed the ticket for later." in fake.texts_in(thread), timeout=60)
            assert fake.cards_in(thread) == []  # no "Where were we?" card in that thread
            assert "Allowed by Alice." in fake.messages[card["id"]]["content"]
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), timeout=30) == 0
    assert calls_made(calls) == ["create_ticket Later"]
    sent = last_streamed(fake_llm)
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[2]["tool_call_id"] == "call_later" and "created ticket #1: Later" in sent[2]["content"]
