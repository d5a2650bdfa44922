"""Figures for the Discord adapter's report: event -> first reply REST call, and REST calls per streamed reply.

Run ``.venv/bin/python -m tests.discord.measure_discord [N]`` (not collected by pytest). The real
DiscordAdapter runs in this process against the loopback Discord, on a real router and SQLite file, with the
fake model on loopback; all timestamps are taken in this process on one monotonic clock.

- Latency: N messages, one at a time, in one live thread (each waits for the previous reply to finish):
  MESSAGE_CREATE sent -> the model request received, -> the first REST call of the reply (the typing
  indicator), and -> the reply's first ``POST /channels/{thread}/messages``.
- Calls: one reply streamed by the fake model over about 20 s; every REST call it causes, and the shortest
  gap between two edits (the throttle's ~1 s).
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from agent.llm import litellm_module
from bots.app import open_router
from bots.config import Settings
from bots.discord import DiscordAdapter
from tests.fakes.discord import FakeDiscord
from tests.fakes.llm import FakeLLM
from tests.fakes.settings import fake_model_settings
from tests.fakes.waiting import FINE_POLL_S, wait_until


def _settings(llm: FakeLLM, fake: FakeDiscord, db: Path) -> Settings:
    return fake_model_settings(
        llm.base_url,
        db,
        discord_token="measure-token",
        discord_api_base=fake.api_base,
        discord_gateway_url=fake.gateway_url,
        log_level="WARNING",
    )


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def _wait(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    await wait_until(predicate, timeout, interval_s=FINE_POLL_S)


def _posted_after(fake: FakeDiscord, calls: int) -> Callable[[], bool]:
    return lambda: any(c.method == "POST" and c.path.endswith("/messages") for c in fake.calls[calls:])


def _summary(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:.1f} ms, p99 {_percentile(values, 0.99) * 1000:.1f} ms"


async def latency(messages: int) -> dict[str, list[float]]:
    to_request: list[float] = []
    to_first_call: list[float] = []
    to_first_post: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeLLM() as llm, FakeDiscord() as fake:
            settings = _settings(llm, fake, Path(tmp) / "latency.db")
            async with open_router(settings) as router:
                adapter = DiscordAdapter(settings=settings, router=router, guild_ready_timeout=0.05)
                await adapter.start()
                root = await fake.user_says("warm-up", mention_bot=True)
                thread = str(root["id"])
                await _wait(lambda: len(fake.texts_in(thread)) == 1)
                await router.idle()
                for i in range(messages):
                    calls, requests = len(fake.calls), len(llm.requests)
                    sent = time.monotonic()
                    await fake.user_says(f"message {i}", channel_id=thread)
                    await _wait(_posted_after(fake, calls))
                    await router.idle()
                    new = fake.calls[calls:]
                    to_request.append(llm.requests[requests].received_at - sent)
                    to_first_call.append(new[0].at - sent)
                    post = next(c for c in new if c.method == "POST" and c.path.endswith("/messages"))
                    to_first_post.append(post.at - sent)
                await adapter.stop()
    return {"request": to_request, "first_call": to_first_call, "first_post": to_first_post}


async def streamed_reply_calls(*, chunks: int = 440, delay_s: float = 0.05) -> tuple[float, Counter[str], float]:
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeLLM(chunk_chars=8, chunk_delay_s=delay_s) as llm, FakeDiscord() as fake:
            llm.reply("".join(f"w{i:05d} " for i in range(chunks)))
            settings = _settings(llm, fake, Path(tmp) / "calls.db")
            async with open_router(settings) as router:
                adapter = DiscordAdapter(settings=settings, router=router, guild_ready_timeout=0.05)
                await adapter.start()
                before = len(fake.calls)
                started = time.monotonic()
                await fake.user_says("write something long", mention_bot=True)
                await _wait(lambda: bool(llm.requests) and llm.requests[-1].finished_at is not None, timeout=90)
                await router.idle()
                elapsed = time.monotonic() - started
                await adapter.stop()
    calls = fake.calls[before:]
    edits = [c.at for c in calls if c.method == "PATCH"]
    gaps = [b - a for a, b in itertools.pairwise(edits)]
    kinds = Counter(_kind(c.method, c.path) for c in calls)
    return elapsed, kinds, min(gaps[:-1] or [0.0])


def _kind(method: str, path: str) -> str:
    """A REST call's kind for counting: ``POST typing``, ``POST threads``, ``POST messages``, ``PATCH messages``."""
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return f"{method} {last if not last.isdigit() else path.rstrip('/').rsplit('/', 2)[-2]}"


async def main() -> None:
    await litellm_module()
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    figures = await latency(messages)
    print(f"n={messages} messages, one at a time, in one live thread:")
    print(f"  MESSAGE_CREATE -> model request received:      {_summary(figures['request'])}")
    print(f"  MESSAGE_CREATE -> first reply REST call (typing): {_summary(figures['first_call'])}")
    print(f"  MESSAGE_CREATE -> reply's first message POST:   {_summary(figures['first_post'])}")
    elapsed, kinds, shortest_gap = await streamed_reply_calls()
    print(
        f"one reply streamed over {elapsed:.1f} s: {dict(kinds)} "
        f"({sum(kinds.values())} calls; shortest gap between throttled edits {shortest_gap:.2f} s)"
    )


if __name__ == "__main__":
    asyncio.run(main())
