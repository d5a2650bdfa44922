"""`threadkeeper run` with METRICS_PORT, as a real process on Slack Socket Mode: ready, scraped, stopped."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.llm import FakeLLM
from tests.fakes.process import child_process
from tests.fakes.settings import fake_model_env
from tests.fakes.slack import FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.slack.conftest import free_port

pytestmark = pytest.mark.slow


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


async def wait_for_ready(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (await get(f"{base}/readyz"))[0] == 200:
                return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("/readyz never answered 200")


async def test_run_serves_readiness_and_metrics_on_metrics_port(tmp_path: Path, fake_llm: FakeLLM) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    mention = Payloads.mention("hello metrics", channel="C7")
    async with FakeSlack() as fake:
        env = fake_model_env(
            fake_llm.base_url,
            tmp_path / "bot.db",
            SLACK_BOT_TOKEN="xoxb-metrics",
            SLACK_APP_TOKEN="xapp-metrics",
            SLACK_API_URL=fake.api_url,
            METRICS_PORT=str(port),
            LOG_LEVEL="INFO",
        )
        fake_llm.reply("Counted.")
        async with child_process(["-m", "bots", "run"], env, log=tmp_path / "bot.log") as bot:
            await wait_for_ready(base)
            assert await get(f"{base}/readyz") == (200, '{"ready": true, "parts": {"database": true, "slack": true}}')
            await fake.send(Payloads.event_body(mention))
            await wait_until(lambda: any(c.params.get("text") == "Counted." for c in fake.calls), timeout=30)
            await asyncio.sleep(0.2)
            status, text = await get(f"{base}/metrics")
            bot.terminate()
            assert await asyncio.wait_for(bot.wait(), timeout=30) == 0
    assert status == 200
    assert 'threadkeeper_messages_logged_total{platform="slack"} 1.0' in text
    assert 'threadkeeper_replies_total{platform="slack"} 1.0' in text
    assert "threadkeeper_live_sessions 1.0" in text
    assert f"metrics and health on 127.0.0.1 port {port}" in (tmp_path / "bot.log").read_text()  # METRICS_HOST
