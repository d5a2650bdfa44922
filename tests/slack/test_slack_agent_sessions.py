"""Slack agent sessions and Stop: a thread's session status follows its turns, a restart and a stop, and Slack's
Stop button ends the answer being written, through the real slack-bolt app and the loopback Slack."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from bots.router.stopping import NOTHING_TO_STOP
from tests.fakes.llm import FakeLLM, ScriptedCall
from tests.fakes.mcp_server import stdio_entry, write_config
from tests.fakes.slack import AgentPayloads, FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows
from tests.slack.conftest import SlackBotFactory
from tests.slack.test_slack_approvals import open_thread
from tests.slack.test_slack_commands import private, shortcut
from tests.slack.test_slack_socket_mode import card_posts, card_value, replies_in, settle
from tests.slack.test_slack_tool_flow import approval_posts

PARTIAL = "The first half of the answer."


async def test_a_turn_moves_the_session_to_processing_with_its_title_then_back_to_active(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    fake_llm.reply("Here you go.")
    fake_llm.reply("And again.")
    mention = Payloads.mention("plan the launch")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: fake_slack.session_statuses(mention["ts"]) == ["processing", "active"])
        await fake_slack.send(Payloads.event_body(Payloads.message("and?", thread_ts=mention["ts"])))
        await wait_until(lambda: len(fake_slack.session_statuses(mention["ts"])) == 4)
        await settle(bot)
    session = fake_slack.sessions[("C1", mention["ts"])]
    assert session.statuses == ["processing", "active", "processing", "active", "suspended"]  # then the bot stopped
    assert session.title and "plan the launch" in session.title


async def test_a_restart_suspends_live_sessions_the_card_keeps_them_so_and_catch_me_up_makes_them_active(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    fake_llm.reply("First answer.")
    mention = Payloads.mention("hello")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: fake_slack.session_statuses(mention["ts"]) == ["processing", "active"])
        await settle(bot)
    assert fake_slack.session_statuses(mention["ts"])[-1] == "suspended"  # the bot stopped (SIGTERM's path)
    fake_llm.reply_with(lambda body: "SUMMARY: said hello" if not body.get("stream") else "Caught up, hello again.")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(Payloads.message("still there?", thread_ts=mention["ts"])))
        await wait_until(lambda: bool(card_posts(fake_slack)))
        await wait_until(lambda: len(fake_slack.session_statuses(mention["ts"])) == 4)  # the card is posted
        catch_up = Payloads.click(card_value(fake_slack, "catch_up"), thread_ts=mention["ts"])
        await fake_slack.send(catch_up, kind="interactive")
        await wait_until(lambda: "Caught up, hello again." in replies_in(fake_slack, mention["ts"]), timeout=15)
        await settle(bot)
    assert fake_slack.session_statuses(mention["ts"]) == [
        "processing",
        "active",
        "suspended",  # the first run stopped
        "suspended",  # the card
        "active",  # Catch me up
        "processing",
        "active",
        "suspended",  # the second run stopped
    ]


async def test_forget_closes_the_threads_agent_session(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    async with slack_bot() as bot:
        thread = await open_thread(fake_slack, bot, "a secret plan")
        await shortcut(fake_slack, "tk_forget", thread)
        [question] = await private(fake_slack)
        [button] = question["blocks"][1]["elements"]
        click = Payloads.click(button["value"], user="UBOB", thread_ts=thread)
        click["container"] |= {"is_ephemeral": True, "thread_ts": thread}
        await fake_slack.send(click, kind="interactive")
        await private(fake_slack, user="UBOB")
        await settle(bot)
    assert fake_slack.session_statuses(thread)[:3] == ["processing", "active", "closed"]


async def test_slack_stop_ends_a_streaming_answer_keeps_what_was_shown_and_the_next_turn_knows(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.chunk_chars = 5
    fake_llm.reply(PARTIAL + " The second half, which nobody should ever see.")
    held = fake_llm.pause_after(len(PARTIAL))
    fake_llm.reply("Picking up where I was stopped.")
    mention = Payloads.mention("explain it all")
    async with slack_bot(llm_timeout_s=30) as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: any(PARTIAL in t for t in replies_in(fake_slack, mention["ts"])), timeout=15)
        stopped_at = time.monotonic()
        await fake_slack.send(Payloads.event_body(AgentPayloads.session_stopped(thread_ts=mention["ts"], user="UBOB")))
        await wait_until(lambda: fake_slack.session_statuses(mention["ts"])[-1:] == ["active"])
        left_processing = time.monotonic() - stopped_at
        await wait_until(lambda: any("(Stopped by `Bob`.)" in t for t in replies_in(fake_slack, mention["ts"])))
        held.set()
        await settle(bot)
        await fake_slack.send(Payloads.event_body(Payloads.message("go on", thread_ts=mention["ts"])))
        await wait_until(lambda: len(fake_llm.requests) == 2)
        await settle(bot)
    assert left_processing < 1.0
    [shown, *_] = replies_in(fake_slack, mention["ts"])
    assert shown.startswith(PARTIAL) and shown.endswith("(Stopped by `Bob`.)") and "second half" not in shown
    logged = db_rows(db_path, "SELECT content FROM messages WHERE role = 'assistant' ORDER BY id")
    assert logged[0]["content"].endswith("(Stopped by `Bob`.)")
    history = [m for m in fake_llm.requests[1].messages if m["role"] == "assistant"]
    assert history[0]["content"].startswith(PARTIAL) and history[0]["content"].endswith("(Stopped by `Bob`.)")
    assert fake_slack.session_statuses(mention["ts"])[:2] == ["processing", "active"]


async def test_stop_when_nothing_runs_tells_the_clicker_privately(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    fake_llm.reply("Done already.")
    mention = Payloads.mention("quick one")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: fake_slack.session_statuses(mention["ts"]) == ["processing", "active"])
        await settle(bot)
        await fake_slack.send(Payloads.event_body(AgentPayloads.session_stopped(thread_ts=mention["ts"], user="UBOB")))
        await wait_until(lambda: bool(fake_slack.ephemerals(user="UBOB")))
        await settle(bot)
    assert [e["text"] for e in fake_slack.ephemerals(user="UBOB")] == [NOTHING_TO_STOP]


async def test_a_workspace_that_refuses_agent_sessions_is_answered_as_today_and_told_once(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    fake_slack.agent_sessions_error = "not_allowed_token_type"
    fake_llm.reply("One.")
    fake_llm.reply("Two.")
    mention = Payloads.mention("hi")
    with caplog.at_level(logging.WARNING, logger="bots.slack.status"):
        async with slack_bot() as bot:
            await fake_slack.send(Payloads.event_body(mention))
            await wait_until(lambda: replies_in(fake_slack, mention["ts"]) == ["One."])
            await fake_slack.send(Payloads.event_body(Payloads.message("again", thread_ts=mention["ts"])))
            await wait_until(lambda: replies_in(fake_slack, mention["ts"]) == ["One.", "Two."])
            await settle(bot)
    assert len(fake_slack.calls_to("agents.sessions.setStatus")) == 1  # refused once: not asked again for an hour
    assert [r.getMessage() for r in caplog.records if "refused agent sessions" in r.getMessage()] != []
    assert len([r for r in caplog.records if "refused agent sessions" in r.getMessage()]) == 1


@pytest.mark.slow  # starts the MCP fake's process
async def test_slack_stop_during_tool_calls_expires_the_approval_lets_the_running_call_finish_and_starts_no_other(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "mcp.json", {"fake": stdio_entry()})
    fake_llm.call_tools(
        ScriptedCall("fake__slow", {"seconds": 1.5}),
        ScriptedCall("fake__create_ticket", {"title": "Rotate the keys"}),
        text="Working on it.",
    )
    fake_llm.reply("A step the stop should have prevented.")
    async with slack_bot(mcp_config=config, llm_function_calling=True) as bot:
        await asyncio.wait_for(bot.router.tools_settled(), timeout=30)
        mention = Payloads.mention("rotate the keys")
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: bool(approval_posts(fake_slack, mention["ts"])), timeout=15)
        stopped_at = time.monotonic()
        await fake_slack.send(Payloads.event_body(AgentPayloads.session_stopped(thread_ts=mention["ts"], user="UBOB")))
        await wait_until(lambda: fake_slack.session_statuses(mention["ts"])[-1:] == ["active"])
        left_processing = time.monotonic() - stopped_at
        await wait_until(
            lambda: any("(Stopped by `Bob`.)" in t for t in replies_in(fake_slack, mention["ts"])), timeout=15
        )
        await settle(bot)
    assert left_processing < 1.0  # while the slow call still ran
    assert len(fake_llm.requests) == 1  # no model step after the stop
    card = approval_posts(fake_slack, mention["ts"])[0]
    blocks = fake_slack.current_blocks(str(card["_ts"]))
    assert not any(b["type"] == "actions" for b in blocks) and "`Bob` stopped the answer" in str(blocks)
    assert tuple(db_rows(db_path, "SELECT state FROM approvals")[0]) == ("expired",)
    calls = {r["tool"]: r["result_excerpt"] for r in db_rows(db_path, "SELECT tool, result_excerpt FROM tool_calls")}
    assert calls["fake__slow"] == "slept 1.5s"  # the running call was let finish, and is in the trail
    assert "did not run" in calls["fake__create_ticket"]
    [shown] = replies_in(fake_slack, mention["ts"])
    assert shown.startswith("Working on it.") and shown.endswith("(Stopped by `Bob`.)")


async def test_slack_stop_of_a_natively_streamed_answer_slack_already_ended_posts_the_note_after_it(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_slack.streaming = True
    fake_llm.chunk_chars = 5
    fake_llm.reply(PARTIAL + " The second half, which nobody should ever see.")
    held = fake_llm.pause_after(len(PARTIAL))
    mention = Payloads.mention("explain it all")
    async with slack_bot(llm_timeout_s=30) as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: any(PARTIAL in s.text for s in fake_slack.streamed_in(mention["ts"])), timeout=15)
        [stream_ts] = [c.params["_ts"] for c in fake_slack.calls_to("chat.startStream")]
        fake_slack.streams[stream_ts].stopped = True  # Slack ends the streams it names in the event itself
        stopped = AgentPayloads.session_stopped(thread_ts=mention["ts"], user="UBOB", streams=(stream_ts,))
        await fake_slack.send(Payloads.event_body(stopped))
        await wait_until(lambda: bool(fake_slack.posts(thread_ts=mention["ts"])), timeout=15)
        held.set()
        await settle(bot)
    [stream] = fake_slack.streamed_in(mention["ts"])
    assert stream.text.startswith(PARTIAL) and "second half" not in stream.text
    [note] = fake_slack.posts(thread_ts=mention["ts"])
    assert note.params["markdown_text"] == "(Stopped by `Bob`.)"  # no "interrupted", no failure notice
    logged = db_rows(db_path, "SELECT content, platform_message_id FROM messages WHERE role = 'assistant'")
    assert logged[0]["content"].endswith("(Stopped by `Bob`.)") and logged[0]["platform_message_id"] == stream_ts
