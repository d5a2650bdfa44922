"""Discord files a restart left unread: the waiting message is fetched again for fresh CDN links, then read.

The real discord.py client against the loopback Discord, restarted in-process (the same database, a new router and
client): a message with files arrives while its thread waits on its "Where were we?" card, the bot stops, every
attachment link Discord handed out expires, and the next run answers the message after the card. The SIGKILL
versions are in ``tests/test_kill_files.py``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from tests.discord.conftest import DiscordBotFactory, button, open_thread, settle
from tests.fakes.discord import VOICE_MESSAGE, FakeDiscord
from tests.fakes.llm import FakeLLM
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows

OGG = b"OggS\x00\x02" + bytes(range(256)) * 4
VOICE = {"transcription_model": "openai/whisper-1"}
SAID = "move the launch to Thursday"
REFETCH = r"/channels/\d+/messages/\d+"
UNREAD = "could not be read: the bot restarted before reading it"


async def left_waiting(
    discord_bot: DiscordBotFactory, fake: FakeDiscord, thread: str, *messages: tuple[str, list[dict[str, Any]], int]
) -> list[dict[str, Any]]:
    """A run that logs ``messages`` (text, attachments, flags) behind the thread's card and stops before anyone
    clicks it; then every attachment link Discord handed out expires. The messages, as sent."""
    async with discord_bot(**VOICE) as bot:
        sent = [
            await fake.user_says(text, channel_id=thread, attachments=files, flags=flags)
            for text, files, flags in messages
        ]
        await wait_until(lambda: len(fake.cards_in(thread)) == 1, what="the card")
        await settle(bot)
    fake.expire_attachment_links()
    return sent


async def click(fake: FakeDiscord, thread: str, action: str) -> None:
    card = fake.cards_in(thread)[0]
    await fake.click(button(card, action), message=card)


def refetched(fake: FakeDiscord) -> list[str]:
    return [c.path.rsplit("/", 1)[1] for c in fake.calls_to("GET", REFETCH)]


def logged(db_path: Path, message_id: str) -> Any:
    return db_rows(db_path, f"SELECT * FROM messages WHERE platform_message_id = '{message_id}'")[0]


def uses(db_path: Path, message_id: str) -> list[str]:
    return [a["used"] for a in json.loads(logged(db_path, message_id)["attachments_json"])]


async def test_a_voice_message_left_waiting_by_a_restart_is_fetched_again_and_transcribed_at_catch_up(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "release planning")
    [voice] = await left_waiting(
        discord_bot, fake_discord, thread, ("", [fake_discord.voice_message(OGG)], VOICE_MESSAGE)
    )
    assert fake_llm.transcriptions.received == [] and uses(db_path, voice["id"]) == ["pending"]
    fake_llm.transcriptions.reply(SAID)
    async with discord_bot(**VOICE) as bot:
        fake_llm.reply("SUMMARY: Alice is planning a release.")
        fake_llm.reply("Thursday it is.")
        await click(fake_discord, thread, "catch_up")
        await wait_until(lambda: "Thursday it is." in fake_discord.texts_in(thread), what="the answer")
        await settle(bot)
    [heard] = fake_llm.transcriptions.received
    assert (heard.filename, heard.data) == ("voice-message.ogg", OGG)
    assert fake_llm.requests[-1].body["messages"][-1]["content"] == (
        f"Alice: [voice message, transcribed] {SAID}\n"
        f"[attachment: voice-message.ogg (audio/ogg, {len(OGG)} bytes), audio: transcribed in this message]"
    )
    row = logged(db_path, voice["id"])
    assert row["transcript"] == SAID and uses(db_path, voice["id"]) == ["transcribed"]
    assert refetched(fake_discord) == [voice["id"]]
    assert fake_discord.cdn_downloads == ["voice-message.ogg"]


@pytest.mark.parametrize("platform", ["deleted it meanwhile", "refuses to show it"])
async def test_a_file_whose_message_cannot_be_fetched_again_is_named_as_left_unread(
    discord_bot: DiscordBotFactory,
    fake_discord: FakeDiscord,
    fake_llm: FakeLLM,
    caplog: pytest.LogCaptureFixture,
    platform: str,
) -> None:
    caplog.set_level(logging.INFO)
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "release planning")
    notes = fake_discord.attachment_file("notes.txt", b"alpha", content_type="text/plain")
    [here] = await left_waiting(discord_bot, fake_discord, thread, ("here are my notes", [notes], 0))
    if platform == "deleted it meanwhile":
        fake_discord.deleted_while_bot_was_away(here)  # Discord tells a bot that is not connected nothing
    else:
        fake_discord.fail("GET", REFETCH, status=403, code=50001)
    async with discord_bot() as bot:
        fake_llm.reply("I could not open them.")
        await click(fake_discord, thread, "fresh")
        await wait_until(lambda: "I could not open them." in fake_discord.texts_in(thread), what="the answer")
        await settle(bot)
    assert "I could not read notes.txt (the bot restarted before reading it)." in fake_discord.texts_in(thread)
    assert f"[attachment: notes.txt (text/plain, 5 bytes), {UNREAD}]" in fake_llm.requests[-1].prompt_text
    assert refetched(fake_discord) == [here["id"]] and fake_discord.cdn_downloads == []
    expected = "is no longer on its platform" if platform == "deleted it meanwhile" else "Read Message History"
    assert expected in caplog.text


async def test_a_message_deleted_before_its_turn_is_forgotten_and_not_fetched_again(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "release planning")
    secret = fake_discord.attachment_file("secret.txt", b"zqxjvqplkw", content_type="text/plain")
    plan = fake_discord.attachment_file("plan.txt", b"ship it", content_type="text/plain")
    gone, kept = await left_waiting(
        discord_bot, fake_discord, thread, ("oops, wrong file", [secret], 0), ("the plan", [plan], 0)
    )
    async with discord_bot() as bot:
        await fake_discord.user_deletes(gone)
        await wait_until(lambda: len(db_rows(db_path, "SELECT 1 FROM erasures")) == 1, what="the deletion")
        fake_llm.reply("Shipping it.")
        await click(fake_discord, thread, "fresh")
        await wait_until(lambda: "Shipping it." in fake_discord.texts_in(thread), what="the answer")
        await settle(bot)
    assert refetched(fake_discord) == [kept["id"]]  # the deleted message is not asked for
    assert fake_discord.cdn_downloads == ["plan.txt"]
    prompt = fake_llm.requests[-1].prompt_text
    assert "[attachment: plan.txt (text/plain, 7 bytes)]\nship it" in prompt and "secret" not in prompt


async def test_a_file_read_after_a_restart_is_neither_fetched_nor_read_again_by_a_later_one(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "release planning")
    notes = fake_discord.attachment_file("notes.txt", b"alpha", content_type="text/plain")
    [here] = await left_waiting(discord_bot, fake_discord, thread, ("here are my notes", [notes], 0))
    async with discord_bot() as bot:  # reads the file, then the model fails: the message still waits
        fake_llm.fail(status=400)
        await click(fake_discord, thread, "fresh")
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 3, what="the failure notice")
        await settle(bot)
    assert uses(db_path, here["id"]) == ["inlined"]
    async with discord_bot() as bot:
        await fake_discord.user_says("are you there?", channel_id=thread)
        await wait_until(lambda: len(fake_discord.cards_in(thread)) == 2, what="the second card")
        await settle(bot)
        fake_llm.reply("Yes.")
        card = fake_discord.cards_in(thread)[-1]
        await fake_discord.click(button(card, "fresh"), message=card)
        await wait_until(lambda: "Yes." in fake_discord.texts_in(thread), what="the answer")
        await settle(bot)
    assert refetched(fake_discord) == [here["id"]] and fake_discord.cdn_downloads == ["notes.txt"]
    assert "[attachment: notes.txt (text/plain, 5 bytes), read earlier; its text is not kept]" in (
        fake_llm.requests[-1].prompt_text
    )
