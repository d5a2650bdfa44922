"""P2 on Postgres: messages/s the routers log across 1,000 concurrent threads, 1 and 3 workers, against raw psycopg.

The same measurement as P2 (``bench/throughput.py``): 1,000 threads each waiting on a "Where were we?" card get
5 messages each, all at once, so the model plays no part and the figure is the cost of the log, the delivery
record, the ownership check and the routing decision. With 3 workers, each is a process of its own
(``--child``) owning a third of the threads; they start measuring together (a line on stdin) and the rate is
all messages over the slowest worker's time. Each worker renews its leases every 5 s as a live one does
(without it, how many threads it took again inside the measured phase, a transaction each, depended on how
long the set-up took: ``bench/p2pg_compare.py`` counted 0 to 800 of 1,000). The baseline inserts the same rows
with plain psycopg, 100 rows per transaction on one connection, into the same schema on the same server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from bench.common import ROOT, Result, settings_for
from bench.drills.workers import postgres_database
from bots.app import open_router
from bots.router.threads import ThreadRouter
from bots.seam.messages import Author, IncomingMessage, ThreadKey
from bots.workers.ownership import LEASE_S
from bots.workers.periodic import Periodic
from storage.migrations import migrate
from storage.postgres.db import open_postgres
from tests.fakes.llm import FakeLLM
from tests.router_harness import RecordingOutbox

THREADS = 1000
PER_THREAD = 5
BATCH = 100
CHILD_TIMEOUT_S = 300
SET_UP_AT_ONCE = 100


def _key(i: int) -> ThreadKey:
    return ThreadKey("test", "bench", "c", f"t{i}")


async def _raw_baseline(url: str) -> float:
    db = await open_postgres(url)
    await migrate(db)
    now = datetime.now(UTC).isoformat()
    async with db.transaction() as connection, connection.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO threads (platform, workspace, channel, thread, created_utc) VALUES ('raw','b','c',%s,%s)",
            [(f"t{i}", now) for i in range(THREADS)],
        )
    rows = await db.fetchall("SELECT id FROM threads WHERE platform = 'raw' ORDER BY id")
    ids = [int(r["id"]) for r in rows]
    values = [(ids[i], f"m-{i}-{n}") for n in range(PER_THREAD) for i in range(THREADS)]
    started = time.perf_counter()
    for start in range(0, len(values), BATCH):
        async with db.transaction() as connection, connection.cursor() as cursor:
            await cursor.executemany(
                "INSERT INTO messages (thread_id, platform_message_id, author_id, author_name, role, content, "
                "reply_state, sent_utc, logged_utc) VALUES (%s, %s, 'u', 'User', 'user', 'x', 'waiting', %s, %s)",
                [(thread_id, mid, now, now) for thread_id, mid in values[start : start + BATCH]],
            )
    elapsed = time.perf_counter() - started
    await db.close()
    return len(values) / elapsed


async def _set_up(router: ThreadRouter, messages: list[IncomingMessage]) -> None:
    """The set-up's messages (not measured), SET_UP_AT_ONCE at a time: all 1,000 at once wait more than the pool's
    10 s for its 10 connections on a loaded machine, and the pool gives up."""
    for start in range(0, len(messages), SET_UP_AT_ONCE):
        await asyncio.gather(*(router.handle_message(m) for m in messages[start : start + SET_UP_AT_ONCE]))


@asynccontextmanager
async def _renewing(router: ThreadRouter) -> AsyncIterator[None]:
    """The lease renewal loop a live worker runs (``bots/workers/ownership.py``), which no adapter starts here."""
    renewal = Periodic(name="lease renewal", interval_s=lambda: LEASE_S / 3, work=router.ownership.renew)
    renewal.start()
    try:
        yield
    finally:
        await renewal.stop()


async def _child(url: str, part: int, parts: int) -> None:
    """One worker: orphan its threads behind cards, say READY, wait for GO, log its share; print the time."""
    author = Author("u", "User")
    mine = [i for i in range(THREADS) if i % parts == part]
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeLLM() as fake:
            settings = settings_for(fake, Path(tmp) / "unused.db", database_url=url)
            async with open_router(settings) as router, _renewing(router):
                router.register_outbox("test", RecordingOutbox())
                await _set_up(router, [IncomingMessage(_key(i), f"old-{i}", author, "old") for i in mine])
                await router.idle()
            async with open_router(settings) as router, _renewing(router):  # a restart: every thread is orphaned
                outbox = RecordingOutbox()
                router.register_outbox("test", outbox)
                await _set_up(router, [IncomingMessage(_key(i), f"first-{i}", author, "hi") for i in mine])
                assert len(outbox.cards_posted) == len(mine)
                messages = [
                    IncomingMessage(_key(i), f"m-{i}-{n}", author, f"message {n}")
                    for n in range(PER_THREAD)
                    for i in mine
                ]
                print("READY", flush=True)
                await asyncio.to_thread(sys.stdin.readline)
                started = time.perf_counter()
                await asyncio.gather(*(router.handle_message(m) for m in messages))
                elapsed = time.perf_counter() - started
    print("RESULT " + json.dumps({"messages": len(messages), "elapsed": elapsed}), flush=True)


async def _workers_rate(url: str, workers: int) -> float:
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.pg_throughput",
            "--child",
            url,
            str(part),
            str(workers),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for part in range(workers)
    ]
    for child in children:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), CHILD_TIMEOUT_S)
        if not line.startswith(b"READY"):
            raise RuntimeError(f"a P2 worker failed to set up: {line!r}")
    for child in children:
        assert child.stdin is not None
        child.stdin.write(b"GO\n")
        await child.stdin.drain()
    total, slowest = 0, 0.0
    for child in children:
        assert child.stdout is not None
        out, _ = await asyncio.wait_for(child.communicate(), CHILD_TIMEOUT_S)
        result = json.loads(out.decode().split("RESULT ", 1)[1])
        total += result["messages"]
        slowest = max(slowest, result["elapsed"])
    return total / slowest


async def run() -> list[Result]:
    with postgres_database(durable=True) as (server, raw_url):
        raw = await _raw_baseline(raw_url)
        rates = {}
        for workers in (1, 3):
            url = server.create_database()
            try:
                rates[workers] = await _workers_rate(url, workers)
            finally:
                server.drop_database(url)
    return [
        Result(
            "P2-pg",
            f"messages logged/s on Postgres, {THREADS} concurrent threads, {workers} worker(s)",
            f"{rate:,.0f}/s",
            f"raw psycopg {raw:,.0f}/s",
            f"{rate / raw:.2f}x",
            ">= 0.50x",
            rate / raw >= 0.5,
        )
        for workers, rate in rates.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs=3, metavar=("URL", "PART", "PARTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, part, parts = args.child
        asyncio.run(_child(url, int(part), int(parts)))
        return
    for result in asyncio.run(run()):
        print(result.row())


if __name__ == "__main__":
    main()
