"""R7: a rolling restart of three workers while Slack traffic flows: every message answered, the longest wait.

Three workers on one Postgres serve R1's traffic (``kill_restart.Traffic``: 20 threads, follow-ups, card
clicks). PASSES times, each worker in turn gets SIGTERM (a deploy), which hands its leases back at once, and is
started again while the other two serve; the traffic never pauses. The threads a stopped worker owned are
taken by whoever sees their next message, and their sessions died with it, so they get the "Where were we?"
card, which the traffic clicks as people would. Reported: R1's audit (nothing missing, nothing answered twice,
nothing left waiting), the clean exits, and the longest time any message waited for the reply that answered
it (from its delivery to the end of the model's answer), card included.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import tempfile
import time
from pathlib import Path

from bench.common import Result, percentile
from bench.drills.kill_restart import audit, slack_shown
from bench.drills.r6_workers import WorkersTraffic, postgres_snapshot
from bench.drills.workers import WorkerPool, postgres_database
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack

PASSES = int(os.environ.get("BENCH_R7_PASSES", "2"))
WORKERS = 3


def answer_waits(sent_at: dict[str, float], shown: set[str], llm: FakeLLM) -> dict[str, float]:
    """Seconds from each message's delivery to the end of the first shown answer that covered it."""
    waits: dict[str, float] = {}
    for request in llm.requests:
        if not request.stream or request.reply not in shown or request.finished_at is None:
            continue
        messages = request.messages
        last_bot = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=0)
        for message in messages[last_bot + 1 :]:
            text = str(message["content"]).split(": ", 1)[-1]
            if message["role"] == "user" and text in sent_at and text not in waits:
                waits[text] = request.finished_at - sent_at[text]
    return waits


async def run() -> list[Result]:
    rng = random.Random(20261202)
    with tempfile.TemporaryDirectory() as tmp, postgres_database() as (_server, url):
        async with FakeLLM(chunk_chars=4, chunk_delay_s=0.01) as llm, FakeSlack(spread=rng) as slack:
            replies = itertools.count()
            llm.reply_with(lambda body: f"reply-{next(replies)} to the thread so far")
            env = {
                "DATABASE_URL": url,
                "LLM_MODEL": "openai/fake",
                "LLM_API_BASE": llm.base_url,
                "SLACK_BOT_TOKEN": "xoxb-drill-secret",
                "SLACK_APP_TOKEN": "xapp-drill-secret",
                "SLACK_API_URL": slack.api_url,
                "LOG_LEVEL": "INFO",
            }
            traffic = WorkersTraffic(slack, rng)
            sent_at: dict[str, float] = {}
            flowing = True

            async def flow() -> None:
                while flowing:
                    await traffic.message()
                    sent_at[next(reversed(traffic.sent.values()))] = time.monotonic()
                    await traffic.click_cards()
                    await asyncio.sleep(rng.uniform(0.05, 0.3))

            pool = WorkerPool(env=env, size=WORKERS, folder=Path(tmp))
            started = time.monotonic()
            async with pool.running_all():
                traffic_task = asyncio.create_task(flow())
                await asyncio.sleep(5)
                exit_codes = []
                for _ in range(PASSES):
                    for slot in range(WORKERS):
                        exit_codes.append(await pool.stop(slot))
                        await pool.start(slot)
                        await asyncio.sleep(2)
                await asyncio.sleep(5)
                flowing = False
                await traffic_task
                quiet_since, deadline = time.monotonic(), time.monotonic() + 120
                while time.monotonic() < deadline:
                    before = len(slack.calls)
                    await traffic.click_cards(again=True)
                    await asyncio.sleep(1.0)
                    if len(slack.calls) != before:
                        quiet_since = time.monotonic()
                    elif time.monotonic() - quiet_since > 6:
                        break
                exit_codes += await pool.stop_all()
            elapsed = time.monotonic() - started
            shown, posts_per_card = slack_shown(slack)
            counts = audit(await asyncio.to_thread(postgres_snapshot, url), traffic.sent, shown, posts_per_card, llm)
            waits = answer_waits(sent_at, shown, llm)
    counts["unanswered"] = len(set(sent_at) - set(waits))
    counts["clean exits"] = sum(1 for code in exit_codes if code == 0)
    longest = max(waits.values(), default=float("nan"))
    ok = (
        counts["missing"] == 0
        and counts["unanswered"] == 0
        and counts["left waiting"] == 0
        and counts["double replies"] == 0
        and counts["clean exits"] == len(exit_codes)
    )
    summary = ", ".join(f"{k} {v}" for k, v in counts.items())
    p50 = percentile(list(waits.values()), 50)
    return [
        Result(
            "R7",
            f"rolling restart (SIGTERM, start) of {WORKERS} workers x {PASSES} under Slack traffic, {elapsed:.0f} s",
            f"{summary}; wait for the answer p50 {p50:.2f} s, longest {longest:.2f} s",
            "-",
            "-",
            "every message answered once, clean exits; longest wait reported",
            ok,
        )
    ]


if __name__ == "__main__":
    for result in asyncio.run(run()):
        print(result.row())
