"""Fixtures for driving the real discord.py client against the loopback Discord."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import discord
import pytest
import yarl

from bots.app import open_router
from bots.discord import DiscordAdapter
from bots.router.threads import ThreadRouter
from tests.conftest import MakeSettings
from tests.fakes.discord import FakeDiscord
from tests.fakes.waiting import wait_until


@dataclass
class DiscordBot:
    adapter: DiscordAdapter
    router: ThreadRouter
    fake: FakeDiscord


DiscordBotFactory = Callable[..., AbstractAsyncContextManager[DiscordBot]]


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    async with FakeDiscord() as fake:
        yield fake
    discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved[0], yarl.URL(saved[1])


@pytest.fixture
def discord_bot(make_settings: MakeSettings, fake_discord: FakeDiscord) -> DiscordBotFactory:
    """``async with discord_bot() as bot``: a connected adapter on a fresh router; entering again is a restart."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[DiscordBot]:
        settings = make_settings(
            discord_token="fake-discord-token",
            discord_api_base=fake_discord.api_base,
            discord_gateway_url=fake_discord.gateway_url,
            **overrides,
        )
        async with open_router(settings) as router:
            adapter = DiscordAdapter(settings=settings, router=router, guild_ready_timeout=0.05)
            await adapter.start()
            await router.resume("discord")
            try:
                yield DiscordBot(adapter, router, fake_discord)
            finally:
                await adapter.stop()

    return start


async def settle(bot: DiscordBot) -> None:
    """Every dispatch the fake sent received and its discord.py listeners finished, then every answer finished."""
    sent = bot.fake.last_seq

    def received() -> bool:
        ws = bot.adapter.client.ws
        return ws is not None and (ws.sequence or 0) >= sent

    def handled() -> bool:
        return not any(t.get_name().startswith("discord.py: ") and not t.done() for t in asyncio.all_tasks())

    await wait_until(received, what="every gateway event received")
    await wait_until(handled, what="every event listener finished")
    await bot.router.idle()


async def open_thread(fake: FakeDiscord, bot: DiscordBot, text: str) -> str:
    """Mention the bot in the channel and wait for its first reply in the new thread; return the thread id."""
    message = await fake.user_says(text, mention_bot=True)
    await wait_until(lambda: len(fake.texts_in(message["id"])) == 1, timeout=30, what="the first answer")
    await settle(bot)
    return str(message["id"])


def buttons(card: dict[str, Any]) -> list[dict[str, Any]]:
    """A card's buttons (the Stop button under an answer being written is no card's: see test_discord_stop.py)."""
    every = [b for row in card.get("components") or [] for b in row["components"]]
    return [b for b in every if not str(b.get("custom_id", "")).startswith("tk-stop:")]


def button(card: dict[str, Any], action: str) -> str:
    return str(next(b["custom_id"] for b in buttons(card) if b["custom_id"].endswith(action)))
