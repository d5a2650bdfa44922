"""/readyz follows the Discord gateway: ready while connected, 503 once the adapter has stopped."""

from __future__ import annotations

import aiohttp

from bots.operator.health import Health, serve_health
from storage.sql import ReadinessProbe
from storage.sqlite.db import open_database
from tests.conftest import MakeSettings
from tests.discord.conftest import DiscordBotFactory
from tests.fakes.discord import FakeDiscord
from tests.fakes.llm import FakeLLM


async def readyz(port: int) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as response:
        return response.status, await response.text()


async def test_readyz_is_ready_while_the_gateway_is_connected_and_not_after_stop(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, make_settings: MakeSettings
) -> None:
    health = Health(expected=("discord",))
    async with serve_health(health, port=0, host="127.0.0.1") as port:
        assert port is not None
        assert (await readyz(port))[0] == 503  # nothing connected yet
        async with discord_bot() as bot:
            db = await open_database(make_settings().database_path)
            health.database = ReadinessProbe(db)
            health.adapters["discord"] = bot.adapter
            assert await readyz(port) == (200, '{"ready": true, "parts": {"database": true, "discord": true}}')
        assert await readyz(port) == (503, '{"ready": false, "parts": {"database": true, "discord": false}}')
        await db.close()
