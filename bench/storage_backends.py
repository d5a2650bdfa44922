"""S1 and S2: the Postgres backend against SQLite and against raw psycopg, in the same run.

- **S1, search.** ``search_thread`` in a 10,000-message thread: Postgres matches the thread's rows on the fly
  (no text index, so forgetting leaves no copy behind); SQLite uses its FTS5 index. Median of 20 queries each.
- **S2, logging.** ``ThreadLog.record_message`` for 5,000 messages arriving concurrently in 1,000 threads, on
  one worker's pool, against raw psycopg inserting the same rows 100 per transaction into the same schema. The
  server keeps fsync on (``durable=True``), as a production server would.

The server is the tests' throwaway one (tests/fakes/postgres.py), started for the run.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Result, median
from storage.backends import Storage, open_storage
from storage.migrations import migrate
from storage.postgres.db import open_postgres
from tests.fakes.postgres import PostgresUnavailable, running_server

THREAD_MESSAGES = 10_000
QUERIES = ["staging database port", "lunch", "deploy rollback plan", "zebra", "password rotation"]
THREADS, PER_THREAD, BATCH = 1000, 5, 100
NOW = datetime(2026, 12, 1, tzinfo=UTC)
SEARCH_TARGET_MS = 100.0


async def _fill_thread(storage: Storage) -> int:
    thread_id = await storage.log.ensure_thread(
        platform="bench", workspace="w", channel="c", thread="big", title=None, now=NOW
    )
    words = ["deploy", "staging", "lunch", "database", "port", "plan", "review", "coffee", "release", "notes"]
    await asyncio.gather(
        *(
            storage.log.record_message(
                thread_id=thread_id, platform_message_id=f"m{i}", author_id="u", author_name="U", role="user",
                content=f"message {i} about {words[i % 10]} and {words[(i * 7) % 10]} with some filler text " * 2,
                sent_utc=NOW, now=NOW,
            )
            for i in range(THREAD_MESSAGES)
        )
    )  # fmt: skip
    return thread_id


async def _search_ms(url: str) -> float:
    async with open_storage(url) as storage:
        thread_id = await _fill_thread(storage)
        timings = []
        for query in QUERIES * 4:
            started = time.perf_counter()
            await storage.search.search(thread_id=thread_id, query=query, limit=5)
            timings.append((time.perf_counter() - started) * 1000)
    return median(timings)


async def _log_rate(url: str) -> float:
    async with open_storage(url) as storage:
        ids = [
            await storage.log.ensure_thread(platform="bench", workspace="w", channel="c", thread=f"t{i}", title=None,
                                            now=NOW)
            for i in range(THREADS)
        ]  # fmt: skip
        started = time.perf_counter()
        await asyncio.gather(
            *(
                storage.log.record_message(
                    thread_id=ids[i], platform_message_id=f"m{n}", author_id="u", author_name="U", role="user",
                    content=f"message {n}", sent_utc=NOW, now=NOW,
                )
                for n in range(PER_THREAD)
                for i in range(THREADS)
            )
        )  # fmt: skip
        return THREADS * PER_THREAD / (time.perf_counter() - started)


async def _raw_rate(url: str) -> float:
    db = await open_postgres(url)
    try:
        await migrate(db)
        now = NOW.isoformat()
        async with db.transaction() as connection:
            cursor = await connection.execute(
                "INSERT INTO threads (platform, workspace, channel, thread, created_utc) "
                "SELECT 'bench', 'w', 'c', 't' || n, %s FROM generate_series(1, %s) AS n RETURNING id",
                (now, THREADS),
            )
            ids = [int(row["id"]) for row in await cursor.fetchall()]
        rows = [(ids[i], f"m{n}", f"message {n}", now, now) for n in range(PER_THREAD) for i in range(THREADS)]
        started = time.perf_counter()
        for start in range(0, len(rows), BATCH):
            await db.executemany(
                "INSERT INTO messages (thread_id, platform_message_id, author_id, author_name, role, content, "
                "reply_state, sent_utc, logged_utc) VALUES (%s, %s, 'u', 'U', 'user', %s, 'waiting', %s, %s)",
                rows[start : start + BATCH],
            )
        return len(rows) / (time.perf_counter() - started)
    finally:
        await db.close()


async def run() -> list[Result]:
    try:
        with running_server(durable=True) as server, tempfile.TemporaryDirectory() as tmp:
            sqlite_ms = await _search_ms(f"sqlite:///{Path(tmp) / 'search.db'}")
            postgres_ms = await _search_ms(server.create_database())
            log_rate = await _log_rate(server.create_database())
            raw_rate = await _raw_rate(server.create_database())
    except PostgresUnavailable as exc:
        return [Result(id, "Postgres backend", f"not run: {exc}", "-", "-", "-", None) for id in ("S1", "S2")]
    return [
        Result(
            "S1",
            f"search_thread median, {THREAD_MESSAGES:,}-message thread, Postgres",
            f"{postgres_ms:.1f} ms",
            f"SQLite FTS5 {sqlite_ms:.1f} ms",
            f"{postgres_ms / sqlite_ms:.1f}x",
            f"<= {SEARCH_TARGET_MS:.0f} ms",
            postgres_ms <= SEARCH_TARGET_MS,
        ),
        Result(
            "S2",
            f"messages logged/s, {THREADS} concurrent threads, Postgres, 1 worker",
            f"{log_rate:,.0f}/s",
            f"raw psycopg {raw_rate:,.0f}/s",
            f"{log_rate / raw_rate:.2f}x",
            ">= 0.50x",
            log_rate / raw_rate >= 0.5,
        ),
    ]
