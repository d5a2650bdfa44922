"""A Discord thread the bot named after a mention is renamed whichever process forgot the mention.

``threadkeeper forget --user`` (the CLI's own function, on its own connection, beside the running bot) and the
retention purge hold no gateway: the journal row says the title was made from the forgotten message, and the
running bot renames the thread (PATCH /channels/{thread}) within the follower's poll, or when it starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from bots.cli import forget_user
from bots.operator import housekeeping
from bots.router import forgetting
from bots.router.forgotten_titles import NEUTRAL_TITLE
from tests.conftest import MakeSettings
from tests.discord.conftest import DiscordBotFactory, open_thread, settle
from tests.fakes.discord import ALICE, BOB, FakeDiscord
from tests.fakes.llm import FakeLLM
from tests.fakes.waiting import wait_until

SECRET = "my password is hunter2, rotate it"


@pytest.fixture(autouse=True)
def quick_follower(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The journal is polled every 50 ms instead of every 2 s: the rename comes within one poll either way."""
    monkeypatch.setattr(forgetting, "FOLLOW_INTERVAL_S", 0.05)
    yield


def renames(fake: FakeDiscord, thread: str) -> int:
    return len(fake.calls_to("PATCH", f"/channels/{thread}"))


async def test_forget_user_beside_the_running_bot_renames_the_thread_named_after_their_mention(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, make_settings: MakeSettings
) -> None:
    fake_llm.reply_with(lambda body: "Noted.")
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, SECRET)
        assert "hunter2" in fake_discord.threads[thread]["name"]
        named_by_bob = await fake_discord.user_says("Bob's plans", mention_bot=True, author=BOB)
        await wait_until(lambda: len(fake_discord.texts_in(named_by_bob["id"])) == 1, timeout=30)
        await settle(bot)
        before = renames(fake_discord, thread)
        assert await forget_user(make_settings(), f"discord:{ALICE['id']}") == 0  # the operator, beside the bot
        await wait_until(lambda: fake_discord.threads[thread]["name"] == NEUTRAL_TITLE, what="the rename")
        await settle(bot)
    assert renames(fake_discord, thread) == before + 1
    assert "Bob" in fake_discord.threads[named_by_bob["id"]]["name"]


async def test_retention_renames_a_thread_named_after_a_purged_mention_at_start_up_and_while_running(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fake's snowflakes date from 2015: 30 days of retention purge every message once answered."""
    fake_llm.reply_with(lambda body: "Noted.")
    async with discord_bot() as bot:
        before_stop = await open_thread(fake_discord, bot, SECRET)
    async with discord_bot(log_retention_days=30) as bot:  # the purge runs at start-up, before the follower
        await wait_until(lambda: fake_discord.threads[before_stop]["name"] == NEUTRAL_TITLE, what="the owed one")
        await settle(bot)
    monkeypatch.setattr(housekeeping, "INTERVAL_S", 0.05)
    monkeypatch.setattr(housekeeping, "RETENTION_EVERY", timedelta(0))
    async with discord_bot(log_retention_days=30) as bot:
        while_running = await open_thread(fake_discord, bot, "call 555-0199 about the lease")
        await wait_until(lambda: fake_discord.threads[while_running]["name"] == NEUTRAL_TITLE, what="the rename")
        await settle(bot)
    assert renames(fake_discord, before_stop) == 1 and renames(fake_discord, while_running) == 1
