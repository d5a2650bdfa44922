"""Discord attachments the bot must not trust: a URL off Discord's CDN, a size that is not a number.

The real discord.py client against the loopback Discord (its CDN is the configured DISCORD_API_BASE's host), a
second loopback address (127.0.0.2) standing for a host that is not Discord's, the loopback model.
"""

from __future__ import annotations

from pathlib import Path

from tests.discord.conftest import DiscordBotFactory, settle
from tests.discord.test_discord_attachments import last_user_content, logged_attachments
from tests.fakes.discord import FakeDiscord
from tests.fakes.elsewhere import SECRET, Elsewhere
from tests.fakes.llm import FakeLLM
from tests.fakes.waiting import wait_until


async def test_an_attachment_off_the_cdn_is_named_to_the_model_and_never_fetched(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with Elsewhere() as elsewhere:
        on_cdn = fake_discord.attachment_file("notes.txt", b"the launch is on Friday", content_type="text/plain")
        off_cdn = fake_discord.attachment("keys.txt", content_type="text/plain", size=40)
        off_cdn["url"] = off_cdn["proxy_url"] = elsewhere.url("/keys.txt")
        async with discord_bot() as bot:
            message = await fake_discord.user_says("read these", mention_bot=True, attachments=[on_cdn, off_cdn])
            await wait_until(lambda: len(fake_discord.texts_in(message["id"])) == 1, what="the answer", timeout=15)
            await settle(bot)
    assert elsewhere.requests == []
    assert fake_discord.cdn_downloads == ["notes.txt"]
    prompt = last_user_content(fake_llm)
    assert "the launch is on Friday" in prompt
    assert (
        "[attachment: keys.txt (text/plain, 40 bytes), not read: it is not stored on Discord's CDN, "
        "so it was not downloaded]" in prompt
    )
    assert SECRET not in prompt
    assert [a["used"] for a in logged_attachments(db_path)] == ["inlined", "noted"]


async def test_an_attachment_whose_size_is_not_a_number_is_named_unreadable_and_the_message_answered(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    odd = fake_discord.attachment_file("odd.txt", b"twelve kilobytes", content_type="text/plain")
    odd["size"] = "12kb"  # discord.py keeps the gateway's value as it came
    fake_llm.reply("Noted.")
    async with discord_bot() as bot:
        message = await fake_discord.user_says("a file", mention_bot=True, attachments=[odd])
        await wait_until(lambda: "Noted." in fake_discord.texts_in(message["id"]), what="the answer", timeout=15)
        await settle(bot)
    assert fake_discord.cdn_downloads == []
    assert "[attachment: odd.txt (text/plain, 0 bytes), could not be read: the platform described it" in (
        last_user_content(fake_llm)
    )
    assert [a["used"] for a in logged_attachments(db_path)] == ["refused"]
