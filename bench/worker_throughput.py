"""P8: answered messages/s of 1 and of 3 workers on one Postgres, a model of fixed latency, 300 threads.

Each worker is a real `threadkeeper run` process (``bench/drills/workers.py``) behind the loopback Slack in
Socket Mode, which spreads envelopes over the live connections at random, so two messages in one thread
usually reach different workers and the owner is woken. The fake model answers every request after
L = 200 ms in one chunk. 300 threads each get a mention, and every thread's next message is sent the moment
its previous reply is posted, MESSAGES per thread: a closed loop, as people waiting for an answer write. The
figure is all messages answered over the time from the first mention to the last reply; 1 and 3 workers run in
the same run on fresh databases of the same server. Target: 3 workers at least 2.5 times one.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

from bench.common import Result
from bench.drills.workers import WorkerPool, postgres_database
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads

THREADS = int(os.environ.get("BENCH_P8_THREADS", "300"))
MESSAGES = int(os.environ.get("BENCH_P8_MESSAGES", "3"))
LATENCY_S = 0.2
TIMEOUT_S = 600.0


async def _answered_per_second(url: str, workers: int, folder: Path) -> float:
    rng = random.Random(8)
    async with FakeLLM(latency_s=LATENCY_S, chunk_chars=10_000) as llm, FakeSlack(spread=rng) as slack:
        llm.reply_with(lambda body: "an answer")
        env = {
            "DATABASE_URL": url,
            "LLM_MODEL": "openai/fake",
            "LLM_API_BASE": llm.base_url,
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_APP_TOKEN": "xapp-bench",
            "SLACK_API_URL": slack.api_url,
            "LOG_LEVEL": "INFO",
            "MAX_LIVE_SESSIONS": str(THREADS * 2),
        }
        pool = WorkerPool(env=env, size=workers, folder=folder)
        async with pool.running_all():
            sent = {}
            answered: dict[str, int] = {}
            seen = 0
            started = time.monotonic()
            for _ in range(THREADS):
                event = Payloads.mention("question 0", user="UALICE")
                sent[event["ts"]], answered[event["ts"]] = 1, 0
                await slack.send(Payloads.event_body(event))
            deadline = started + TIMEOUT_S
            while sum(answered.values()) < THREADS * MESSAGES:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"P8: {sum(answered.values())} of {THREADS * MESSAGES} answered")
                calls = slack.calls[seen:]
                seen += len(calls)
                for call in calls:
                    root = call.params.get("thread_ts")
                    if call.method != "chat.postMessage" or root not in answered:
                        continue
                    answered[root] += 1
                    if sent[root] < MESSAGES:
                        sent[root] += 1
                        event = Payloads.message(f"question {sent[root]}", user="UALICE", thread_ts=root)
                        await slack.send(Payloads.event_body(event))
                await asyncio.sleep(0.005)
            elapsed = time.monotonic() - started
            await pool.stop_all()
    return THREADS * MESSAGES / elapsed


async def run() -> list[Result]:
    rates = {}
    with tempfile.TemporaryDirectory() as tmp, postgres_database() as (server, _url):
        for workers in (1, 3):
            url = server.create_database()
            try:
                folder = Path(tmp) / f"w{workers}"
                folder.mkdir()
                rates[workers] = await _answered_per_second(url, workers, folder)
            finally:
                server.drop_database(url)
    ratio = rates[3] / rates[1]
    return [
        Result(
            "P8",
            f"answered msgs/s, {THREADS} threads x {MESSAGES}, model L = {LATENCY_S * 1000:.0f} ms, 3 workers",
            f"{rates[3]:,.1f}/s",
            f"1 worker {rates[1]:,.1f}/s",
            f"{ratio:.2f}x",
            ">= 2.5x",
            ratio >= 2.5,
        )
    ]


if __name__ == "__main__":
    for result in asyncio.run(run()):
        print(result.row())
