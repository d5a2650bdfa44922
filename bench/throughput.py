"""P2: messages/s the router logs across 1,000 concurrent threads, against raw batched aiosqlite inserts.

The router's figure is the rate at which ``handle_message`` logs messages arriving concurrently in 1,000
threads that are waiting on a "Where were we?" card, so the model plays no part: it is the cost of the log
and the routing decision. The baseline inserts the same rows with plain aiosqlite, 100 rows per transaction,
into the same schema in the same run.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Result, scratch_router
from bots.seam.messages import Author, IncomingMessage, ThreadKey
from storage.migrations import migrate
from storage.sqlite.db import open_database
from tests.fakes.llm import FakeLLM

THREADS = 1000
PER_THREAD = 5
BATCH = 100


def _key(i: int) -> ThreadKey:
    return ThreadKey("test", "bench", "c", f"t{i}")


async def _raw_baseline(rows: list[tuple[int, str]]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        db = await open_database(Path(tmp) / "raw.db")
        await migrate(db)
        now = datetime.now(UTC).isoformat()
        await db.executemany(
            "INSERT INTO threads (platform, workspace, channel, thread, created_utc) VALUES ('test','bench','c',?,?)",
            [(f"t{i}", now) for i in range(THREADS)],
        )
        started = time.perf_counter()
        for start in range(0, len(rows), BATCH):
            await db.executemany(
                "INSERT INTO messages (thread_id, platform_message_id, author_id, author_name, role, content, "
                "reply_state, sent_utc, logged_utc) VALUES (?, ?, 'u', 'User', 'user', ?, 'waiting', ?, ?)",
                [(thread_id, mid, f"message {mid}", now, now) for thread_id, mid in rows[start : start + BATCH]],
            )
        elapsed = time.perf_counter() - started
        await db.close()
    return len(rows) / elapsed


async def _router_rate() -> float:
    author = Author("u", "User")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        async with FakeLLM() as fake:
            async with scratch_router(fake, db) as (router, _):
                await asyncio.gather(
                    *(
                        router.handle_message(IncomingMessage(_key(i), f"old-{i}", author, "old"))
                        for i in range(THREADS)
                    )
                )
                await router.idle()
            # A restart: every thread is orphaned; its first new message gets the card.
            async with scratch_router(fake, db) as (router, outbox):
                await asyncio.gather(
                    *(
                        router.handle_message(IncomingMessage(_key(i), f"first-{i}", author, "hi"))
                        for i in range(THREADS)
                    )
                )
                assert len(outbox.cards_posted) == THREADS
                messages = [
                    IncomingMessage(_key(i), f"m-{i}-{n}", author, f"message {n}")
                    for n in range(PER_THREAD)
                    for i in range(THREADS)
                ]
                started = time.perf_counter()
                await asyncio.gather(*(router.handle_message(m) for m in messages))
                elapsed = time.perf_counter() - started
    return len(messages) / elapsed


async def run() -> list[Result]:
    rows = [(1 + i, f"m-{i}-{n}") for n in range(PER_THREAD) for i in range(THREADS)]
    raw = await _raw_baseline(rows)
    routed = await _router_rate()
    ratio = routed / raw
    return [
        Result(
            "P2",
            f"messages logged/s, {THREADS} concurrent threads",
            f"{routed:,.0f}/s",
            f"raw aiosqlite {raw:,.0f}/s",
            f"{ratio:.2f}x",
            ">= 0.50x",
            ratio >= 0.5,
        )
    ]


if __name__ == "__main__":
    for result in asyncio.run(run()):
        print(result.row())
