"""Slack audio clips and audio files: transcribed through litellm (TRANSCRIPTION_MODEL), answered from the transcript.

The real slack-bolt app in Socket Mode, the loopback Slack (Web API, Socket Mode and the file host serving the clip
with the bot token), the loopback model serving chat and ``/v1/audio/transcriptions`` through the real litellm, a
real SQLite log.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.llm import FakeLLM, ScriptedCall
from tests.fakes.slack import FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows
from tests.slack.conftest import SlackBotFactory
from tests.slack.test_slack_attachments import with_files
from tests.slack.test_slack_socket_mode import card_posts, card_value, replies_in, settle

CLIP = b"\x00\x00\x00\x18ftypM4A " + bytes(range(256)) * 4  # the bot never parses it; the model's API does
VOICE = {"transcription_model": "openai/whisper-1"}
SAID = "the staging database moves to port 6543 on Friday"


def audio_clip(fake: FakeSlack, *, duration_ms: int = 4200) -> dict[str, Any]:
    """A clip recorded in Slack, as a ``file_share`` carries it."""
    return fake.file("audio_message.m4a", CLIP, mimetype="audio/mp4") | {
        "subtype": "slack_audio",
        "media_display_type": "audio",
        "duration_ms": duration_ms,
    }


def transcripts(db_path: Path) -> list[str]:
    return [r["transcript"] for r in db_rows(db_path, "SELECT transcript FROM messages WHERE transcript IS NOT NULL")]


async def test_an_audio_clip_is_answered_from_its_transcript_which_search_and_the_catch_up_see(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    mention = Payloads.mention("release planning")
    root = mention["ts"]
    fake_llm.transcriptions.reply(SAID)
    async with slack_bot(**VOICE, llm_function_calling=True) as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(replies_in(fake_slack, root)) == 1)
        clip = audio_clip(fake_slack)
        fake_llm.reply("Port 6543 from Friday, noted.")
        await fake_slack.send(Payloads.event_body(with_files(Payloads.message("", thread_ts=root), clip)))
        await wait_until(lambda: "Port 6543 from Friday, noted." in replies_in(fake_slack, root), what="the answer")
        await settle(bot)
        assert fake_slack.file_downloads == [(clip["id"], 200)]  # with the bot token, from Slack's file host
        [heard] = fake_llm.transcriptions.received
        assert (heard.model, heard.filename, heard.data) == ("whisper-1", "audio_message.m4a", CLIP)
        assert fake_llm.requests[-1].body["messages"][-1]["content"] == (
            f"Alice: [voice message, transcribed] {SAID}\n"
            f"[attachment: audio_message.m4a (audio/mp4, {len(CLIP)} bytes), audio: transcribed in this message]"
        )
        # search_thread finds the voice message by what was said.
        fake_llm.call_tools(ScriptedCall("search_thread", {"query": "staging port"}))
        fake_llm.reply("It moves to 6543.")
        await fake_slack.send(Payloads.event_body(Payloads.message("which port again?", thread_ts=root)))
        await wait_until(lambda: "It moves to 6543." in replies_in(fake_slack, root), what="the searched answer")
        await settle(bot)
        tool_result = fake_llm.requests[-1].body["messages"][-1]
        assert tool_result["role"] == "tool" and f"[voice message, transcribed] {SAID}" in tool_result["content"]
    assert transcripts(db_path) == [SAID]
    async with slack_bot(**VOICE) as bot:  # a restart: the catch-up is written from the log
        await fake_slack.send(Payloads.event_body(Payloads.message("where were we?", thread_ts=root)))
        await wait_until(lambda: len(card_posts(fake_slack)) == 1)
        fake_llm.reply("SUMMARY: staging moves to 6543 on Friday.")
        fake_llm.reply("Staging moves on Friday.")
        card = card_posts(fake_slack)[0]
        await fake_slack.send(
            Payloads.click(card_value(fake_slack, "catch_up"), message_ts=str(card["_ts"]), thread_ts=root),
            kind="interactive",
        )
        await wait_until(lambda: "Staging moves on Friday." in replies_in(fake_slack, root))
        await settle(bot)
    summary = next(r for r in fake_llm.requests if not r.stream).prompt_text
    assert f"[voice message, transcribed] {SAID}" in summary
    assert len(fake_llm.transcriptions.received) == 1  # transcribed once, then read from the log


async def test_a_transcription_that_takes_too_long_is_a_short_note_and_the_message_is_still_answered(
    slack_bot: SlackBotFactory,
    fake_slack: FakeSlack,
    fake_llm: FakeLLM,
    db_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    fake_llm.transcriptions.hang(5.0)
    fake_llm.reply("Go ahead and type it.")
    async with slack_bot(**VOICE, transcription_timeout_s=0.5) as bot:
        mention = with_files(Payloads.mention("listen to this"), audio_clip(fake_slack))
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: "Go ahead and type it." in replies_in(fake_slack, mention["ts"]), timeout=10)
        await settle(bot)
    assert replies_in(fake_slack, mention["ts"])[0] == "I couldn't transcribe the voice message (it took too long)."
    assert fake_llm.requests[-1].body["messages"][-1]["content"] == (
        "Alice: listen to this\n"
        f"[attachment: audio_message.m4a (audio/mp4, {len(CLIP)} bytes), audio: could not be transcribed: "
        "it took too long]"
    )
    assert "transcribing audio_message.m4a took over 0.5 s" in caplog.text
    assert transcripts(db_path) == []


async def test_deleting_an_audio_clip_erases_its_transcript_from_the_log_and_the_session(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.transcriptions.reply("the door code is zqxjvqplkw")
    fake_llm.reply_with(lambda body: "Noted.")
    mention = Payloads.mention("release planning")
    root = mention["ts"]
    async with slack_bot(**VOICE) as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(replies_in(fake_slack, root)) == 1)
        voice = with_files(Payloads.message("", thread_ts=root), audio_clip(fake_slack))
        await fake_slack.send(Payloads.event_body(voice))
        await wait_until(lambda: len(replies_in(fake_slack, root)) == 2)
        await settle(bot)
        assert "zqxjvqplkw" in fake_llm.requests[-1].prompt_text and len(transcripts(db_path)) == 1
        await fake_slack.send(Payloads.event_body(Payloads.deleted(ts=voice["ts"], thread_ts=root)))
        await wait_until(lambda: len(db_rows(db_path, "SELECT 1 FROM erasures")) == 1)
        await fake_slack.send(Payloads.event_body(Payloads.message("what is left?", thread_ts=root)))
        await wait_until(lambda: len(replies_in(fake_slack, root)) == 3)
        await settle(bot)
    assert "zqxjvqplkw" not in fake_llm.requests[-1].prompt_text
    assert transcripts(db_path) == []


async def test_without_a_transcription_model_an_audio_file_is_named_as_before(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    fake_llm.reply("I cannot listen to audio.")
    async with slack_bot() as bot:
        memo = fake_slack.file("memo.mp3", CLIP, mimetype="audio/mpeg")
        mention = with_files(Payloads.mention("my notes"), memo)
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: "I cannot listen to audio." in replies_in(fake_slack, mention["ts"]))
        await settle(bot)
    assert fake_llm.transcriptions.received == []
    text = str(fake_llm.requests[-1].body["messages"][-1]["content"])
    assert text.startswith(f"Alice: my notes\n[attachment: memo.mp3 (audio/mpeg, {len(CLIP)} bytes), not read: ")
    assert "transcri" not in text
