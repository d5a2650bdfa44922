"""The first story: a mention opens a thread and the reply streams into it."""

from __future__ import annotations

from tests.discord.conftest import DiscordBotFactory
from tests.fakes.discord import CHANNEL, FakeDiscord
from tests.fakes.llm import FakeLLM
from tests.fakes.waiting import wait_until


async def test_mention_opens_a_thread_and_the_reply_lands_in_it(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM
) -> None:
    fake_llm.reply("Hello from the thread.")
    async with discord_bot() as bot:
        message = await fake_discord.user_says("can you help with the release?", mention_bot=True)
        await wait_until(lambda: fake_discord.texts_in(message["id"]) == ["Hello from the thread."])
        await bot.router.idle()
    thread = fake_discord.threads[message["id"]]
    assert thread["parent_id"] == CHANNEL and thread["name"] == "can you help with the release?"
