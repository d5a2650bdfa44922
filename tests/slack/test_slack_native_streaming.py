"""Slack's native streaming: a reply streams to the asker, continues past a message's limit, shows tool progress
as a task, breaks honestly, and a workspace that refuses the methods gets post + update, asked again later."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bots.replies.render import tool_status
from bots.replies.reply_stream import INTERRUPTED
from bots.seam.messages import ThreadKey
from bots.slack.feedback import FEEDBACK_ACTION
from bots.slack.stream import STREAM_LIMIT
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import STREAM_CALL_LIMIT, TEAM, FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows
from tests.slack.conftest import SlackBotFactory
from tests.slack.test_slack_socket_mode import card_posts, card_value, replies_in, settle

STREAM_METHODS = ("chat.startStream", "chat.appendStream", "chat.stopStream")


def stream_calls(fake: FakeSlack) -> list[str]:
    return [c.method for c in fake.calls if c.method in STREAM_METHODS]


def feedback_values(blocks: list[dict[str, object]]) -> list[str]:
    element = blocks[-1]["elements"][0]  # type: ignore[index]
    assert element["action_id"] == FEEDBACK_ACTION
    return [element["positive_button"]["value"], element["negative_button"]["value"]]


async def test_a_channel_reply_streams_natively_to_the_asker_asked_after_the_model_and_carries_feedback_buttons(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_slack.streaming = True
    # Slack answers the start only once the model has been asked: a start sent before the request would hang.
    fake_slack.held_until["chat.startStream"] = lambda: bool(fake_llm.requests)
    fake_llm.reply("Here is **the plan**: ship on Friday.")
    mention = Payloads.mention("what is the plan?", user="UBOB")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: any(s.stopped for s in fake_slack.streamed_in(mention["ts"])))
        await settle(bot)
    [stream] = fake_slack.streamed_in(mention["ts"])
    assert stream.text == "Here is **the plan**: ship on Friday."  # markdown, as the model wrote it
    [start] = fake_slack.calls_to("chat.startStream")
    assert (start.params["recipient_user_id"], start.params["recipient_team_id"]) == ("UBOB", TEAM)
    assert "_status" not in start.params  # it was not held too long: the model request had gone out
    assert stream_calls(fake_slack)[0] == "chat.startStream" and stream_calls(fake_slack)[-1] == "chat.stopStream"
    assert fake_slack.posts(thread_ts=mention["ts"]) == []  # no placeholder, no chat.update
    assert feedback_values(stream.blocks) == [f"positive:{start.params['_ts']}", f"negative:{start.params['_ts']}"]
    logged = db_rows(db_path, "SELECT platform_message_id FROM messages WHERE role = 'assistant'")
    assert [r["platform_message_id"] for r in logged] == [start.params["_ts"]]


async def test_a_reply_longer_than_a_streamed_message_continues_in_a_new_one_within_the_call_limit(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    fake_slack.streaming = True
    paragraph = "{:04d}: a sentence that fills the reply up, one paragraph at a time, for the long answer test.\n\n"
    count = 2 * STREAM_LIMIT // len(paragraph.format(0)) + 3
    reply = "".join(paragraph.format(i) for i in range(count))  # numbered: the same paragraph over and over is a loop
    fake_llm.reply(reply)
    fake_llm.chunk_chars = 4000
    mention = Payloads.mention("write a lot")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len([s for s in fake_slack.streamed_in(mention["ts"]) if s.stopped]) == 3, timeout=15)
        await settle(bot)
    streams = fake_slack.streamed_in(mention["ts"])
    assert all(len(s.text) <= STREAM_LIMIT <= STREAM_CALL_LIMIT for s in streams)
    assert "\n\n".join(s.text.strip() for s in streams) == reply.strip()
    assert [bool(s.blocks) for s in streams] == [False, False, True]  # the buttons end the whole answer
    assert len(fake_slack.calls_to("chat.startStream")) == 3 and len(fake_slack.calls_to("chat.stopStream")) == 3


async def test_where_setstatus_is_refused_a_running_tool_shows_as_a_task_in_the_stream(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    fake_slack.streaming = True
    fake_llm.reply("Let me look. It says ship on Friday.")
    fake_llm.chunk_chars = 13
    resume = fake_llm.pause_after(13)
    mention = Payloads.mention("what do the notes say?")
    where = ThreadKey("slack", TEAM, "C1", mention["ts"])
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(
            lambda: bool(fake_slack.streamed_in(mention["ts"])) and bool(fake_slack.streamed_in(mention["ts"])[0].text)
        )
        await bot.adapter.outbox.show_status(thread=where, text=tool_status("files__read_file"))
        await wait_until(lambda: fake_slack.streamed_in(mention["ts"])[0].tasks == {"tk-task-1": "in_progress"})
        await bot.adapter.outbox.show_status(thread=where, text=None)
        resume.set()
        await wait_until(lambda: fake_slack.streamed_in(mention["ts"])[0].stopped)
        await settle(bot)
    [stream] = fake_slack.streamed_in(mention["ts"])
    assert stream.tasks == {"tk-task-1": "complete"}
    assert stream.text == "Let me look. It says ship on Friday."  # the status never became text
    task_chunk = next(
        chunk
        for call in fake_slack.calls_to("chat.appendStream")
        for chunk in call.params.get("chunks", [])
        if chunk["type"] == "task_update"
    )
    assert task_chunk["title"] == "Running files__read_file…"
    refused = [c for c in fake_slack.calls_to("assistant.threads.setStatus") if c.params.get("_status")]
    assert len(refused) == 1  # the thinking status, refused once in a channel thread: asked no more


async def test_a_native_stream_that_breaks_keeps_everything_received_marked_interrupted_without_buttons(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    fake_slack.streaming = True
    fake_llm.reply("This sentence will be cut off somewhere in the middle of it. " * 4)
    fake_llm.chunk_chars, fake_llm.chunk_delay_s = 10, 0.03
    fake_llm.break_stream(after_chars=120)
    mention = Payloads.mention("tell me")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(fake_slack.posts(thread_ts=mention["ts"])) == 1, timeout=10)  # the notice
        await settle(bot)
    [stream] = fake_slack.streamed_in(mention["ts"])
    cut_short = ("This sentence will be cut off somewhere in the middle of it. " * 2)[:120]
    assert stream.stopped and stream.text == cut_short + INTERRUPTED and stream.blocks == []
    [note] = replies_in(fake_slack, mention["ts"])
    assert "model" in note.lower()


async def test_in_a_dm_the_stream_opens_with_the_first_text_after_the_thinking_status_and_names_no_recipient(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    fake_slack.streaming = True
    fake_llm.reply("Sure, here you go.")
    dm = Payloads.dm("help me out")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(dm))
        await wait_until(lambda: any(s.stopped for s in fake_slack.streamed_in(dm["ts"])))
        await settle(bot)
    [start] = fake_slack.calls_to("chat.startStream")
    assert "recipient_user_id" not in start.params and start.params["thread_ts"] == dm["ts"]
    thinking, cleared = fake_slack.calls_to("assistant.threads.setStatus")
    assert thinking.params["status"] == "is thinking…" and cleared.params["status"] == ""
    assert thinking.at < start.at
    assert fake_slack.streamed_in(dm["ts"])[0].text == "Sure, here you go."


async def test_a_workspace_that_refuses_streaming_gets_post_and_update_logged_once_and_is_asked_again_later(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    first, second, third = (Payloads.mention(text) for text in ("one", "two", "three"))
    for answer in ("First answer.", "Second answer.", "Third answer."):
        fake_llm.reply(answer)
    async with slack_bot() as bot:
        for mention in (first, second):
            await fake_slack.send(Payloads.event_body(mention))
            await wait_until(lambda mention=mention: len(replies_in(fake_slack, mention["ts"])) == 1)
            await settle(bot)
        assert [c.params.get("_status") for c in fake_slack.calls_to("chat.startStream")] == ["unknown_method"]
        bot.adapter.outbox.native._retry_after_s = 0.0  # "after a while": now
        fake_slack.streaming = True  # the workspace was upgraded meanwhile
        await fake_slack.send(Payloads.event_body(third))
        await wait_until(lambda: any(s.stopped for s in fake_slack.streamed_in(third["ts"])))
        await settle(bot)
    assert replies_in(fake_slack, first["ts"]) == ["First answer."]
    assert replies_in(fake_slack, second["ts"]) == ["Second answer."]
    assert fake_slack.streamed_in(third["ts"])[0].text == "Third answer."
    assert caplog.text.count("Slack refused native streaming") == 1
    # The posted answer carries the buttons too, with its text kept as blocks.
    posted = fake_slack.posts(thread_ts=first["ts"])[0].params["_ts"]
    blocks = fake_slack.current_blocks(posted)
    assert blocks[0]["text"]["text"] == "First answer." and feedback_values(blocks)[0] == f"positive:{posted}"
    # ... in the same update as its final text: no update repeats that text only to add them
    finals = [c for c in fake_slack.calls_to("chat.update") if c.params["ts"] == posted]
    assert [bool(c.params.get("blocks")) for c in finals if c.params.get("text") == "First answer."] == [True]


async def test_after_a_restart_the_caught_up_answer_streams_to_the_clicker(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    fake_slack.streaming = True
    mention = Payloads.mention("we picked Redis for caching")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: any(s.stopped for s in fake_slack.streamed_in(mention["ts"])))
        await settle(bot)
    async with slack_bot() as bot:  # a new process: it knows nobody in the thread yet
        question = Payloads.message("what did we pick?", thread_ts=mention["ts"], user="UBOB")
        await fake_slack.send(Payloads.event_body(question))
        await wait_until(lambda: len(card_posts(fake_slack)) == 1)
        card = card_posts(fake_slack)[0]
        fake_llm.reply("SUMMARY: the team picked Redis for caching.")
        fake_llm.reply("You picked Redis.")
        click = Payloads.click(
            card_value(fake_slack, "catch_up"), user="UCAROL", message_ts=str(card["_ts"]), thread_ts=mention["ts"]
        )
        await fake_slack.send(click, kind="interactive")
        await wait_until(lambda: len([s for s in fake_slack.streamed_in(mention["ts"]) if s.stopped]) == 2)
        await settle(bot)
    answer = fake_slack.streamed_in(mention["ts"])[-1]
    assert answer.text == "You picked Redis."
    assert fake_slack.calls_to("chat.startStream")[-1].params["recipient_user_id"] == "UCAROL"


async def test_in_a_slack_connect_channel_the_stream_names_the_askers_own_team(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    fake_slack.streaming = True
    fake_llm.reply("Hello, partner.")
    mention = Payloads.mention("hi from the other org", user="UPARTNER", team="TPARTNER")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.shared_channel_body(mention, host_team="TPARTNER"))
        await wait_until(lambda: any(s.stopped for s in fake_slack.streamed_in(mention["ts"])))
        await settle(bot)
    [start] = fake_slack.calls_to("chat.startStream")
    assert (start.params["recipient_user_id"], start.params["recipient_team_id"]) == ("UPARTNER", "TPARTNER")


async def test_in_a_dm_a_model_that_fails_before_any_text_opens_no_stream(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    fake_slack.streaming = True
    fake_llm.fail_always(401)
    dm = Payloads.dm("hello?")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(dm))
        await wait_until(lambda: len(replies_in(fake_slack, dm["ts"])) == 1)  # the short notice
        await settle(bot)
    assert fake_slack.calls_to("chat.startStream") == [] and fake_slack.calls_to("chat.delete") == []
    assert [c.params["status"] for c in fake_slack.calls_to("assistant.threads.setStatus")] == ["is thinking…", ""]
