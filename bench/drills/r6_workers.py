"""R6: three `threadkeeper run` workers on one Postgres under R1's traffic, any of them SIGKILLed, restarted.

R1's traffic (20 Slack threads of mentions, follow-ups and card clicks by two users, ``kill_restart.Traffic``)
flows through the loopback Slack in Socket Mode, which delivers each envelope to one of the live connections at
random, as Slack does with several, and redelivers whatever a dead worker never acknowledged. ROUNDS times a
random worker is SIGKILLed after 1-4 s of traffic and started again while the traffic goes on. A last, quiet
phase clicks every card still waiting. Then R1's audit runs against the Postgres log, plus the check of this
drill: no thread was answered by two workers at once (two shown answers in one thread, from two workers, whose
model calls overlapped), and how many writes fencing refused.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import psycopg

from bench.common import Result
from bench.drills.kill_restart import COUNTS, LOGGED_USER_IDS, LogSnapshot, Traffic, audit, slack_shown
from bench.drills.workers import WorkerPool, postgres_database, worker_key
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack

ROUNDS = int(os.environ.get("BENCH_R6_ROUNDS", "50"))
WORKERS = 3
LEASE_S = "6"  # a dead worker's threads are taken within this many seconds
SECRETS = ("xoxb-drill-secret", "xapp-drill-secret", *(worker_key(slot) for slot in range(WORKERS)))


class WorkersTraffic(Traffic):
    """R1's traffic, except that people write in a thread once the bot has spoken there.

    With several workers, a reply sent right after a mention can reach another worker before the mention is
    logged, and a message in a thread the bot does not take part in (yet) is ignored, as it always is. People
    write after the bot answered the mention; this traffic does the same.
    """

    def follow_up_roots(self) -> list[str]:
        spoken = {c.params.get("thread_ts") for c in self.slack.posts()}
        return [root for root in self.roots if root in spoken]


def postgres_snapshot(url: str) -> LogSnapshot:
    with psycopg.connect(url) as connection:
        logged = [str(row[0]) for row in connection.execute(LOGGED_USER_IDS)]
        counts = {}
        for name, sql in COUNTS.items():
            row = connection.execute(sql).fetchone()
            counts[name] = int(row[0]) if row else 0
        orphans = connection.execute(
            "SELECT count(*) FROM messages m WHERE NOT EXISTS (SELECT 1 FROM threads t WHERE t.id = m.thread_id)"
        ).fetchone()
    return LogSnapshot(logged, counts, integrity_ok=orphans is not None and orphans[0] == 0)


def answered_at_once(thread_of: dict[str, str], shown: set[str], llm: FakeLLM) -> int:
    """Threads with two shown answers by two workers whose model calls overlapped in time.

    ``thread_of`` maps each message text people sent to its thread; ``shown``: the bot's messages' final text.
    """
    spans: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for request in llm.requests:
        if not request.stream or request.reply not in shown or request.finished_at is None:
            continue
        users = [m for m in request.messages if m["role"] == "user"]
        if not users:
            continue
        thread = thread_of.get(str(users[-1]["content"]).split(": ", 1)[-1])
        if thread is not None:
            worker = request.headers.get("Authorization", "")
            spans[thread].append((request.received_at, request.finished_at, worker))
    overlapping = 0
    for answers in spans.values():
        answers.sort()
        if any(later[0] < earlier[1] and later[2] != earlier[2] for earlier, later in itertools.pairwise(answers)):
            overlapping += 1
    return overlapping


async def slack_drill(url: str, folder: Path) -> dict[str, int]:
    rng = random.Random(20261201)
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
            "WORKER_LEASE_S": LEASE_S,
            "WORKER_POLL_S": "1",
        }
        traffic = WorkersTraffic(slack, rng)
        pool = WorkerPool(env=env, size=WORKERS, folder=folder)
        async with pool.running_all():
            for _ in range(ROUNDS):
                victim = rng.choice(pool.running())
                await pool.kill(victim)
                restart = asyncio.create_task(pool.start(victim))  # the others serve meanwhile
                deadline = time.monotonic() + rng.uniform(1.0, 4.0)
                while time.monotonic() < deadline or not restart.done():
                    await traffic.message()
                    await traffic.click_cards()
                    await asyncio.sleep(rng.uniform(0.02, 0.3))
                await restart
                await slack.redeliver_unacked()
            await _quiet(traffic, slack)
            exit_codes = await pool.stop_all()
        shown, posts_per_card = slack_shown(slack)
        counts = audit(await asyncio.to_thread(postgres_snapshot, url), traffic.sent, shown, posts_per_card, llm)
        counts["answered by two workers at once"] = answered_at_once(traffic.thread_of, shown, llm)
        logs = pool.logs()
        counts["writes refused by fencing"] = logs.count("a write was refused")
        counts["clean exits"] = sum(1 for code in exit_codes if code == 0)
        counts["secrets in log"] = sum(logs.count(secret) for secret in SECRETS)
    return counts


async def _quiet(traffic: Traffic, slack: FakeSlack) -> None:
    """Click what is still waiting until nothing more happens for a while (R1's last run)."""
    await slack.redeliver_unacked()
    quiet_since, deadline = time.monotonic(), time.monotonic() + 180
    while time.monotonic() < deadline:
        before = len(slack.calls)
        await traffic.click_cards(again=True)
        await asyncio.sleep(1.0)
        if slack.unacked:
            await slack.redeliver_unacked()  # as Slack retries what was not acknowledged
            quiet_since = time.monotonic()
        elif len(slack.calls) != before:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 8:
            break


def _verdict(counts: dict[str, int]) -> bool:
    return (
        counts["missing"] == 0
        and counts["duplicate rows"] == 0
        and counts["double replies"] == 0
        and counts["cards posted more than once"] == 0
        and counts["left waiting"] == 0
        and counts["answered by two workers at once"] == 0
        and counts["integrity ok"] == 1
        and counts["clean exits"] == WORKERS
        and counts["secrets in log"] == 0
    )


async def run() -> list[Result]:
    from bench.drills.r6_discord import ROUNDS as DISCORD_ROUNDS
    from bench.drills.r6_discord import discord_drill

    results = []
    for platform, rounds, drill in (("Slack", ROUNDS, slack_drill), ("Discord", DISCORD_ROUNDS, discord_drill)):
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as tmp, postgres_database() as (_server, url):
            counts = await drill(url, Path(tmp))
        elapsed = time.monotonic() - started
        results.append(
            Result(
                "R6",
                f"{WORKERS} workers on Postgres, {rounds} SIGKILLs of any worker under {platform} traffic in "
                f"{elapsed:.0f} s",
                ", ".join(f"{k} {v}" for k, v in counts.items()),
                "-",
                "-",
                "R1's audit, 0 left waiting, no thread answered by two workers at once",
                _verdict(counts),
            )
        )
    return results


if __name__ == "__main__":
    for result in asyncio.run(run()):
        print(result.row())
