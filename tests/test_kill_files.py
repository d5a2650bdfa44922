"""`threadkeeper run` SIGKILLed while it reads a voice message, started again: the message is heard after the card.

A person sends a voice message (Discord) or an audio clip and a text file (Slack); the bot logs it and starts the
turn that answers it, and dies while the audio is with the speech-to-text service (the fake transcription hangs).
Where the files download from died with the process. The next process posts the "Where were we?" card, and Catch me
up answers the message: the message is fetched again from the platform for fresh sources, the audio is transcribed
and the file read, and the answer's request carries them (issue 22). SQLite and Postgres.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.discord.conftest import button
from tests.fakes.bot_process import (
    ANSWER_S,
    READY_S,
    bot_process,
    discord_env,
    llm_env,
    resumed,
    sigkill,
    slack_buttons,
    slack_env,
    slack_said,
)
from tests.fakes.discord import VOICE_MESSAGE, FakeDiscord
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.slack.test_slack_attachments import with_files
from tests.slack.test_slack_voice import CLIP, audio_clip

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # two cold starts of the bot on a loaded machine

OGG = b"OggS\x00\x02" + bytes(range(256)) * 4
SAID = "let's ship on Friday after the review"
VOICE = {"TRANSCRIPTION_MODEL": "openai/whisper-1"}


@pytest.fixture(params=["sqlite", "postgres"])
def backend_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Nothing more for SQLite (the file of ``llm_env``); a new Postgres database otherwise."""
    if request.param == "sqlite":
        return {}
    return {"DATABASE_URL": str(request.getfixturevalue("postgres_url"))}


def last_user_text(fake_llm: FakeLLM) -> str:
    return str([r for r in fake_llm.requests if r.stream][-1].body["messages"][-1]["content"])


async def test_discord_voice_message_cut_off_by_a_sigkill_is_fetched_again_and_heard_at_catch_up(
    tmp_path: Path, fake_llm: FakeLLM, backend_env: dict[str, str]
) -> None:
    log = tmp_path / "bot.log"
    async with FakeDiscord() as fake:
        env = llm_env(fake_llm, tmp_path) | VOICE | backend_env | discord_env(fake)
        async with bot_process(env, log) as first:
            await wait_until(lambda: fake.identified == 1, timeout=READY_S)
            fake_llm.reply("Hello.")
            thread = str((await fake.user_says("release planning", mention_bot=True))["id"])
            await wait_until(lambda: "Hello." in fake.texts_in(thread), timeout=ANSWER_S)
            fake_llm.transcriptions.hang(120)  # the turn that answers the voice message never gets its transcript
            voice = fake.voice_message(OGG)
            await fake.user_says("", channel_id=thread, attachments=[voice], flags=VOICE_MESSAGE)
            await wait_until(lambda: len(fake_llm.transcriptions.received) == 1, timeout=ANSWER_S)
            await sigkill(first)
        fake_llm.transcriptions.clear_faults()
        fake.expire_attachment_links()  # the link the first process downloaded from is dead
        fake_llm.transcriptions.reply(SAID)
        async with bot_process(env, log) as second:
            await resumed(log, 2)
            await wait_until(lambda: len(fake.cards_in(thread)) == 1, timeout=ANSWER_S, what="the card")
            card = fake.cards_in(thread)[0]
            fake_llm.reply("SUMMARY: Alice is planning a release.")
            fake_llm.reply("Friday it is.")
            await fake.click(button(card, "catch_up"), message=card)
            await wait_until(lambda: "Friday it is." in fake.texts_in(thread), timeout=ANSWER_S, what="the answer")
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), timeout=30) == 0
    heard = fake_llm.transcriptions.received
    assert len(heard) == 2 and heard[-1].data == OGG  # once cut off by the SIGKILL, once after the restart
    assert last_user_text(fake_llm) == (
        f"Alice: [voice message, transcribed] {SAID}\n"
        f"[attachment: voice-message.ogg (audio/ogg, {len(OGG)} bytes), audio: transcribed in this message]"
    )
    assert len(fake.calls_to("GET", rf"/channels/{thread}/messages/\d+")) == 1
    assert "fake-token" not in log.read_text()


async def test_slack_audio_clip_and_file_cut_off_by_a_sigkill_are_fetched_again_and_read_at_catch_up(
    tmp_path: Path, fake_llm: FakeLLM, backend_env: dict[str, str]
) -> None:
    log = tmp_path / "bot.log"
    async with FakeSlack(bot_token="xoxb-secret-token") as fake:
        env = llm_env(fake_llm, tmp_path) | VOICE | backend_env | slack_env(fake)
        mention = Payloads.mention("release planning")
        root = mention["ts"]
        clip, notes = audio_clip(fake), fake.file("notes.txt", b"alpha", mimetype="text/plain")
        message = with_files(Payloads.message("here you go", thread_ts=root), clip, notes)
        fake.thread_messages[("C1", root)] = [message]  # what conversations.replies finds
        async with bot_process(env, log) as first:
            await wait_until(lambda: fake.connected == 1, timeout=READY_S)
            fake_llm.reply("Hello.")
            await fake.send(Payloads.event_body(mention))
            await wait_until(lambda: slack_said(fake, "Hello."), timeout=ANSWER_S)
            fake_llm.transcriptions.hang(120)
            await fake.send(Payloads.event_body(message))
            await wait_until(lambda: len(fake_llm.transcriptions.received) == 1, timeout=ANSWER_S)
            await sigkill(first)
        fake_llm.transcriptions.clear_faults()
        fake_llm.transcriptions.reply(SAID)
        downloaded = len(fake.file_downloads)  # the first process read notes.txt, and died before logging that
        async with bot_process(env, log) as second:
            await resumed(log, 2)
            await wait_until(lambda: bool(slack_buttons(fake, "catch_up")), timeout=ANSWER_S, what="the card")
            fake_llm.reply("SUMMARY: Alice is planning a release.")
            fake_llm.reply("Port 6543 from Friday, noted.")
            await fake.send(fake.click_on(slack_buttons(fake, "catch_up")[0]), kind="interactive")
            await wait_until(lambda: slack_said(fake, "Port 6543 from Friday, noted."), timeout=ANSWER_S)
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), timeout=30) == 0
    assert len(fake_llm.transcriptions.received) == 2 and fake_llm.transcriptions.received[-1].data == CLIP
    assert sorted(fake.file_downloads[downloaded:]) == [(clip["id"], 200), (notes["id"], 200)]
    assert last_user_text(fake_llm) == (
        f"Alice: here you go\n[voice message, transcribed] {SAID}\n"
        f"[attachment: audio_message.m4a (audio/mp4, {len(CLIP)} bytes), audio: transcribed in this message]\n"
        "[attachment: notes.txt (text/plain, 5 bytes)]\nalpha"
    )
    assert len([c for c in fake.calls_to("conversations.replies") if c.params.get("oldest") == message["ts"]]) == 1
    text = log.read_text()
    assert "xoxb-secret-token" not in text and "xapp-secret-token" not in text
