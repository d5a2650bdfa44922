"""Discord voice messages: transcribed through litellm (TRANSCRIPTION_MODEL) and answered from the transcript.

The real discord.py client, the loopback Discord (gateway, REST and the CDN serving the voice message), the loopback
model serving both chat and ``/v1/audio/transcriptions`` through the real litellm, a real SQLite log.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.discord.conftest import DiscordBotFactory, open_thread, settle
from tests.discord.test_discord_commands import answered
from tests.fakes.discord import VOICE_MESSAGE, FakeDiscord
from tests.fakes.llm import FakeLLM
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows

OGG = b"OggS\x00\x02" + bytes(range(256)) * 4  # what the CDN serves: the bot never parses it, the model's API does
VOICE = {"transcription_model": "openai/whisper-1"}
SAID = "let's ship on Friday after the review"


def last_user_text(fake_llm: FakeLLM) -> str:
    return str(fake_llm.requests[-1].body["messages"][-1]["content"])


async def test_a_voice_message_is_answered_from_its_transcript_which_the_log_and_export_keep(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.transcriptions.reply(SAID)
    async with discord_bot(**VOICE) as bot:
        thread = await open_thread(fake_discord, bot, "release planning")
        fake_llm.reply("Friday it is.")
        await fake_discord.user_says(
            "", channel_id=thread, attachments=[fake_discord.voice_message(OGG)], flags=VOICE_MESSAGE
        )
        await wait_until(lambda: "Friday it is." in fake_discord.texts_in(thread), what="the answer")
        export = await fake_discord.use_command("export", channel_id=thread)
        await answered(fake_discord, export)
        await settle(bot)
    [heard] = fake_llm.transcriptions.received
    assert (heard.model, heard.filename, heard.data) == ("whisper-1", "voice-message.ogg", OGG)
    assert last_user_text(fake_llm) == (
        f"Alice: [voice message, transcribed] {SAID}\n"
        f"[attachment: voice-message.ogg (audio/ogg, {len(OGG)} bytes), audio: transcribed in this message]"
    )
    [row] = db_rows(db_path, "SELECT content, transcript, attachments_json FROM messages WHERE transcript IS NOT NULL")
    assert (row["content"], row["transcript"]) == ("", SAID)
    assert '"used": "transcribed"' in row["attachments_json"]
    assert f"[voice message, transcribed] {SAID}" in fake_discord.uploads[-1].content.decode()
    assert not any("couldn't transcribe" in text for text in fake_discord.texts_in(thread))


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("provider error", "the transcription service failed"), ("too long", "too long")],
)
async def test_a_voice_message_that_cannot_be_transcribed_gets_a_short_note_and_is_still_answered(
    discord_bot: DiscordBotFactory,
    fake_discord: FakeDiscord,
    fake_llm: FakeLLM,
    db_path: Path,
    caplog: pytest.LogCaptureFixture,
    fault: str,
    reason: str,
) -> None:
    caplog.set_level(logging.INFO)
    fake_llm.transcriptions.fail(500)
    duration = 3.5 if fault == "provider error" else 900.0  # over TRANSCRIPTION_MAX_SECONDS' 600
    async with discord_bot(**VOICE) as bot:
        thread = await open_thread(fake_discord, bot, "release planning")
        fake_llm.reply("Sorry, I could not hear that; could you type it?")
        voice = fake_discord.voice_message(OGG, duration_s=duration)
        await fake_discord.user_says("about the date", channel_id=thread, attachments=[voice], flags=VOICE_MESSAGE)
        await wait_until(lambda: "Sorry, I could not hear that; could you type it?" in fake_discord.texts_in(thread))
        await settle(bot)
    assert f"I couldn't transcribe the voice message ({reason})." in fake_discord.texts_in(thread)
    assert last_user_text(fake_llm) == (
        "Alice: about the date\n"
        f"[attachment: voice-message.ogg (audio/ogg, {len(OGG)} bytes), audio: could not be transcribed: {reason}]"
    )
    assert len(fake_llm.transcriptions.received) == (1 if fault == "provider error" else 0)
    assert "fake transcription error 500" in caplog.text if fault == "provider error" else "600 s limit" in caplog.text
    assert db_rows(db_path, "SELECT COUNT(*) AS n FROM messages WHERE transcript IS NOT NULL")[0]["n"] == 0


async def test_deleting_a_voice_message_erases_its_transcript_from_the_log_and_the_session(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.transcriptions.reply("the door code is zqxjvqplkw")
    fake_llm.reply_with(lambda body: "Noted.")
    async with discord_bot(**VOICE) as bot:
        thread = await open_thread(fake_discord, bot, "release planning")
        voice = await fake_discord.user_says(
            "", channel_id=thread, attachments=[fake_discord.voice_message(OGG)], flags=VOICE_MESSAGE
        )
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 2)
        await settle(bot)
        assert "zqxjvqplkw" in fake_llm.requests[-1].prompt_text
        await fake_discord.user_deletes(voice)
        await wait_until(lambda: len(db_rows(db_path, "SELECT 1 FROM erasures")) == 1)
        await fake_discord.user_says("what is left?", channel_id=thread)
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 3)
        await settle(bot)
    assert "zqxjvqplkw" not in fake_llm.requests[-1].prompt_text
    assert db_rows(db_path, "SELECT COUNT(*) AS n FROM messages WHERE transcript IS NOT NULL")[0]["n"] == 0


async def test_without_a_transcription_model_a_voice_message_is_named_as_before(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM
) -> None:
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "release planning")
        fake_llm.reply("I cannot listen to audio.")
        await fake_discord.user_says(
            "", channel_id=thread, attachments=[fake_discord.voice_message(OGG)], flags=VOICE_MESSAGE
        )
        await wait_until(lambda: "I cannot listen to audio." in fake_discord.texts_in(thread))
        await settle(bot)
    assert fake_llm.transcriptions.received == []
    text = last_user_text(fake_llm)
    assert text.startswith(f"Alice: [attachment: voice-message.ogg (audio/ogg, {len(OGG)} bytes), not read: ")
    assert "transcri" not in text
