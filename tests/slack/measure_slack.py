"""Figures for the Slack adapter's report: ack and first-post latency, and Web API calls per streamed reply.

Run ``.venv/bin/python -m tests.slack.measure_slack`` (not collected by pytest). The real SlackAdapter runs
in this process in Socket Mode against the loopback Slack, on a real router and SQLite file, with the fake
model on loopback; every timestamp comes from the fake's one monotonic clock.

- Latency: N messages, one at a time, in one live thread (each waits for the previous reply to finish):
  envelope sent -> ack received, and envelope sent -> the reply's first chat.postMessage received.
- Calls: one reply streamed by the fake model over about 20 s; every Web API call it causes, by method.
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
from pathlib import Path
from typing import Any

from agent.llm import litellm_module
from bots.app import open_router
from bots.config import Settings
from bots.slack import SlackAdapter
from tests.fakes.llm import FakeLLM
from tests.fakes.settings import fake_model_settings
from tests.fakes.slack import FakeSlack, Payloads
from tests.fakes.waiting import FINE_POLL_S, wait_until


def _settings(llm: FakeLLM, slack: FakeSlack, db: Path) -> Settings:
    return fake_model_settings(
        llm.base_url,
        db,
        slack_bot_token="xoxb-measure",
        slack_app_token="xapp-measure",
        slack_api_url=slack.api_url,
        log_level="WARNING",
    )


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def _wait(predicate: Any, timeout: float = 30.0) -> None:
    await wait_until(predicate, timeout, interval_s=FINE_POLL_S)


async def latency(messages: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeLLM() as llm, FakeSlack() as slack:
            settings = _settings(llm, slack, Path(tmp) / "latency.db")
            async with open_router(settings) as router:
                adapter = SlackAdapter(settings=settings, router=router)
                await adapter.start()
                await _wait(lambda: slack.connected > 0)
                root = Payloads.mention("warm-up")
                await slack.send(Payloads.event_body(root))
                await _wait(lambda: len(slack.posts(thread_ts=root["ts"])) == 1)
                await router.idle()
                to_ack, to_post = [], []
                for i in range(messages):
                    seen = len(slack.posts())
                    envelope = await slack.send(Payloads.event_body(Payloads.message(f"m{i}", thread_ts=root["ts"])))
                    await _wait(lambda seen=seen: len(slack.posts()) > seen)
                    await router.idle()
                    first_post = slack.posts()[seen]
                    to_ack.append(slack.acked_at[envelope] - slack.sent_at[envelope])
                    to_post.append(first_post.at - slack.sent_at[envelope])
                await adapter.stop()
    ms = 1000.0
    return {
        "ack_p50_ms": statistics.median(to_ack) * ms,
        "ack_p99_ms": _percentile(to_ack, 0.99) * ms,
        "post_p50_ms": statistics.median(to_post) * ms,
        "post_p99_ms": _percentile(to_post, 0.99) * ms,
    }


async def streamed_reply_calls(*, chunks: int = 440, delay_s: float = 0.05) -> tuple[float, Counter[str], float]:
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeLLM(chunk_chars=8, chunk_delay_s=delay_s) as llm, FakeSlack() as slack:
            llm.reply("".join(f"w{i:05d} " for i in range(chunks)))
            settings = _settings(llm, slack, Path(tmp) / "calls.db")
            async with open_router(settings) as router:
                adapter = SlackAdapter(settings=settings, router=router)
                await adapter.start()
                await _wait(lambda: slack.connected > 0)
                before = len(slack.calls)
                started = time.monotonic()
                await slack.send(Payloads.event_body(Payloads.mention("write something long")))
                await _wait(lambda: bool(llm.requests) and llm.requests[-1].finished_at is not None, timeout=90)
                await router.idle()
                elapsed = time.monotonic() - started
                await adapter.stop()
    calls = slack.calls[before:]
    updates = [c.at for c in calls if c.method == "chat.update"]
    gaps = [b - a for a, b in itertools.pairwise(updates)]
    # The last two gaps are the final flush and the update that adds the feedback buttons, both at once.
    return elapsed, Counter(c.method for c in calls), min(gaps[:-2] or [0.0])


async def main() -> None:
    await litellm_module()
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    figures = await latency(messages)
    print(
        f"event -> ack: p50 {figures['ack_p50_ms']:.1f} ms, p99 {figures['ack_p99_ms']:.1f} ms; "
        f"event -> first chat.postMessage: p50 {figures['post_p50_ms']:.1f} ms, p99 {figures['post_p99_ms']:.1f} ms "
        f"(n={messages}, one live thread, Socket Mode)"
    )
    elapsed, methods, shortest_gap = await streamed_reply_calls()
    print(
        f"one reply streamed over {elapsed:.1f} s: {dict(methods)} "
        f"({sum(methods.values())} calls; shortest gap between throttled updates {shortest_gap:.2f} s)"
    )


if __name__ == "__main__":
    asyncio.run(main())
