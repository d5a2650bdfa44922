"""/metrics, /healthz and /readyz scraped with a real HTTP client after real router turns.

Counters are process-wide (Prometheus's registry), so each test reads them before and after its story.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bots.app import open_router
from bots.config import Settings
from bots.operator.health import Health, serve_health
from bots.seam.messages import CardAction
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM
from tests.router_harness import PLATFORM, Bot, RecordingOutbox


class Scraper:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as http, http.get(self.base + path) as response:
            return response.status, await response.text()

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, text = await self.get("/metrics")
        assert status == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@asynccontextmanager
async def observed_bot(settings: Settings, health: Health) -> AsyncIterator[tuple[Bot, Scraper]]:
    async with serve_health(health, port=0, host="127.0.0.1") as port, open_router(settings, health=health) as router:
        assert port is not None
        outbox = RecordingOutbox()
        router.register_outbox(PLATFORM, outbox)
        await router.resume(PLATFORM)
        await router.idle()
        yield Bot(router, outbox), Scraper(port)
        await router.idle()


async def test_a_turn_shows_up_in_the_metrics_and_the_bot_is_healthy_and_ready(
    make_settings: MakeSettings, fake_llm: FakeLLM
) -> None:
    async with observed_bot(make_settings(), Health()) as (bot, scraper):
        before = await scraper.metrics()
        fake_llm.reply("Hello Alice.")
        await bot.say("Hi there")
        after = await scraper.metrics()
        assert await scraper.get("/healthz") == (200, "ok\n")
        assert await scraper.get("/readyz") == (200, '{"ready": true, "parts": {"database": true}}')

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("threadkeeper_messages_logged_total", platform=PLATFORM) == 1
    assert delta("threadkeeper_replies_total", platform=PLATFORM) == 1
    assert delta("threadkeeper_model_latency_seconds_count", call="answer") == 1
    assert delta("threadkeeper_model_time_to_first_token_seconds_count") == 1
    assert delta("threadkeeper_model_tokens_total", direction="out") == len(fake_llm.requests[0].reply or "") // 4 + 1
    assert delta("threadkeeper_model_tokens_total", direction="in") > 0
    assert delta("threadkeeper_db_commit_seconds_count", write="message") == 1
    assert delta("threadkeeper_db_commit_seconds_count", write="reply") == 1
    assert value(after, "threadkeeper_live_sessions") == 1
    assert value(after, "threadkeeper_threads_waiting") == 0


async def test_a_failed_answer_counts_its_kind_and_leaves_the_thread_waiting(
    make_settings: MakeSettings, fake_llm: FakeLLM
) -> None:
    async with observed_bot(make_settings(), Health()) as (bot, scraper):
        before = await scraper.metrics()
        fake_llm.fail_always(401)
        await bot.say("Anyone there?")
        after = await scraper.metrics()
    errors = value(after, "threadkeeper_model_errors_total", kind="auth")
    assert errors - value(before, "threadkeeper_model_errors_total", kind="auth") == 1
    assert value(after, "threadkeeper_threads_waiting") == 1
    assert value(after, "threadkeeper_replies_total", platform=PLATFORM) == value(
        before, "threadkeeper_replies_total", platform=PLATFORM
    )


async def test_cards_shown_and_resolved_by_choice_and_the_catch_up_duration(
    make_settings: MakeSettings, fake_llm: FakeLLM
) -> None:
    async with observed_bot(make_settings(), Health()) as (bot, _):
        await bot.say("We ship on Friday.")
    async with observed_bot(make_settings(), Health()) as (bot, scraper):
        before = await scraper.metrics()
        await bot.say("When do we ship?")
        fake_llm.reply("SUMMARY: shipping Friday.")
        await bot.click(CardAction.CATCH_UP)
        after = await scraper.metrics()
    assert (
        value(after, "threadkeeper_cards_shown_total", platform=PLATFORM)
        - value(before, "threadkeeper_cards_shown_total", platform=PLATFORM)
        == 1
    )
    for name, labels in [
        ("threadkeeper_cards_resolved_total", {"choice": "caught_up"}),
        ("threadkeeper_catch_up_seconds_count", {}),
        ("threadkeeper_model_latency_seconds_count", {"call": "summary"}),
    ]:
        assert value(after, name, **labels) - value(before, name, **labels) == 1, name


async def test_readyz_is_503_until_every_configured_adapter_is_connected(
    make_settings: MakeSettings, fake_llm: FakeLLM
) -> None:
    async with observed_bot(make_settings(), Health(expected=("slack",))) as (_, scraper):
        status, body = await scraper.get("/readyz")
        assert status == 503
        assert body == '{"ready": false, "parts": {"database": true, "slack": false}}'
        assert (await scraper.get("/healthz"))[0] == 200
