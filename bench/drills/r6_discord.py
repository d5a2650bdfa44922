"""R6, Discord: three workers on one Postgres, one of them holding the gateway shard, any of them SIGKILLed.

The loopback Discord has one shard (``DISCORD_SHARDS=1``): the worker holding its lease receives every event;
the two others are logged in to REST only and answer the threads they own, woken by the holder. 10 threads are
opened by mentions first; then follow-ups from two people and card clicks flow while, ROUNDS times, a random
worker is SIGKILLed and started again. When the killed worker held the shard, Discord delivers nothing until
another worker takes the shard (within the lease time) and connects, as Discord replays nothing to a new
session: what was written meanwhile stays in the channel's history, and the first message in each thread
after the reconnect makes the adapter backfill it. At the end every thread gets one more message (so each is
backfilled), every card still showing buttons is clicked until nothing more happens, and R1's audit runs on
the Postgres log and on what the fake Discord shows, with R6's check that no thread was answered by two
workers at once.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import re
import time
from collections import Counter
from pathlib import Path

from bench.drills.kill_restart import audit
from bench.drills.r6_workers import LEASE_S, WORKERS, answered_at_once, postgres_snapshot
from bench.drills.workers import WorkerPool, worker_key
from tests.fakes.discord import ALICE, BOB, BOT_ID, FakeDiscord
from tests.fakes.llm import FakeLLM
from tests.fakes.waiting import wait_until

ROUNDS = int(os.environ.get("BENCH_R6_DISCORD_ROUNDS", "50"))
THREADS = 10
CARD_BUTTON = re.compile(r"^tk-card:(\d+):")
SECRETS = ("drill-discord-secret", *(worker_key(slot) for slot in range(WORKERS)))


class DiscordTraffic:
    """Follow-ups and clicks in the drill's threads; what was sent, for the audit."""

    def __init__(self, fake: FakeDiscord, rng: random.Random) -> None:
        self.fake, self.rng = fake, rng
        self.threads: list[str] = []
        self.sent: list[str] = []  # platform ids of the messages people wrote
        self.thread_of: dict[str, str] = {}  # message text -> thread id
        self.clicked: set[str] = set()
        self.n = itertools.count()

    async def open_threads(self) -> None:
        for _ in range(THREADS):
            text = f"msg-{next(self.n)}"
            mention = await self.fake.user_says(text, mention_bot=True)
            await wait_until(lambda m=mention: bool(self.fake.sent_in(m["id"])), timeout=60, what="the first answer")
            self.threads.append(mention["id"])
            self.sent.append(mention["id"])
            self.thread_of[text] = mention["id"]

    async def message(self, thread: str | None = None) -> None:
        text = f"msg-{next(self.n)}"
        thread = thread or self.rng.choice(self.threads)
        message = await self.fake.user_says(text, channel_id=thread, author=self.rng.choice((ALICE, BOB)))
        self.sent.append(message["id"])
        self.thread_of[text] = thread

    async def click_cards(self, *, again: bool = False) -> None:
        for thread in self.threads:
            for card in self.fake.sent_in(thread):
                buttons = [b for row in card.get("components") or [] for b in row.get("components", [])]
                if not buttons or (card["id"] in self.clicked and not again):
                    continue
                self.clicked.add(card["id"])
                for _ in range(self.rng.choice((1, 2))):
                    button = self.rng.choice(buttons)
                    await self.fake.click(button["custom_id"], message=card, who=self.rng.choice((ALICE, BOB)))


def discord_shown(fake: FakeDiscord) -> tuple[set[str], Counter[str]]:
    """The final text of every bot message, and how many messages carried each card's buttons."""
    shown, posts_per_card = set(), Counter[str]()
    for message in fake.messages.values():
        if message["author"]["id"] != BOT_ID:
            continue
        shown.add(message["content"])
        for row in message.get("components") or []:
            match = next((CARD_BUTTON.match(b.get("custom_id", "")) for b in row.get("components", [])), None)
            if match:
                posts_per_card[match.group(1)] += 1
    return shown, posts_per_card


async def _quiet(traffic: DiscordTraffic, fake: FakeDiscord) -> None:
    quiet_since, deadline = time.monotonic(), time.monotonic() + 180
    while time.monotonic() < deadline:
        before = len(fake.calls)
        await traffic.click_cards(again=True)
        await asyncio.sleep(1.0)
        if len(fake.calls) != before or not fake.connected:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 8:
            break


async def discord_drill(url: str, folder: Path) -> dict[str, int]:
    rng = random.Random(20261203)
    async with FakeLLM(chunk_chars=4, chunk_delay_s=0.01) as llm, FakeDiscord() as fake:
        replies = itertools.count()
        llm.reply_with(lambda body: f"reply-{next(replies)} to the thread so far")
        env = {
            "DATABASE_URL": url,
            "LLM_MODEL": "openai/fake",
            "LLM_API_BASE": llm.base_url,
            "DISCORD_TOKEN": "drill-discord-secret",
            "DISCORD_API_BASE": fake.api_base,
            "DISCORD_GATEWAY_URL": fake.gateway_url,
            "LOG_LEVEL": "INFO",
            "WORKER_LEASE_S": LEASE_S,
            "WORKER_POLL_S": "1",
        }
        traffic = DiscordTraffic(fake, rng)
        pool = WorkerPool(env=env, size=WORKERS, folder=folder)
        async with pool.running_all():
            await traffic.open_threads()
            for _ in range(ROUNDS):
                victim = rng.choice(pool.running())
                await pool.kill(victim)
                restart = asyncio.create_task(pool.start(victim))
                deadline = time.monotonic() + rng.uniform(1.0, 4.0)
                while time.monotonic() < deadline or not restart.done():
                    await traffic.message()
                    await traffic.click_cards()
                    await asyncio.sleep(rng.uniform(0.02, 0.3))
                await restart
            await wait_until(lambda: fake.connected > 0, timeout=60, what="a shard holder")
            for thread in traffic.threads:  # the first message after a reconnect backfills its thread
                await traffic.message(thread)
            await _quiet(traffic, fake)
            exit_codes = await pool.stop_all()
        shown, posts_per_card = discord_shown(fake)
        counts = audit(await asyncio.to_thread(postgres_snapshot, url), traffic.sent, shown, posts_per_card, llm)
        counts["answered by two workers at once"] = answered_at_once(traffic.thread_of, shown, llm)
        logs = pool.logs()
        counts["writes refused by fencing"] = logs.count("a write was refused")
        counts["shard acquisitions"] = logs.count("holding Discord shard")
        counts["clean exits"] = sum(1 for code in exit_codes if code == 0)
        counts["secrets in log"] = sum(logs.count(secret) for secret in SECRETS)
    return counts
