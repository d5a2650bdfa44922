"""The Postgres connection layer and migration runner, against a real server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest

from storage.migrations import applied_migrations, migrate, migrations_for
from storage.postgres.db import open_postgres
from storage.postgres.leases import WORKER_TABLES
from storage.sqlite.db import open_database


async def test_blank_database_gets_every_migration_once(postgres_url: str) -> None:
    db = await open_postgres(postgres_url)
    try:
        assert await applied_migrations(db) == []
        assert await migrate(db) == [m.name for m in migrations_for("postgres")]
        assert await migrate(db) == []
        assert await applied_migrations(db) == [m.name for m in migrations_for("postgres")]
        tables = {
            r["tablename"] for r in await db.fetchall("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert {
            "threads",
            "messages",
            "sessions",
            "cards",
            "delivered_events",
            "erasures",
            "usage",
            "tool_calls",
            "approvals",
            "_migrations",
        } <= tables
    finally:
        await db.close()


async def test_both_backends_have_the_same_tables_and_columns(postgres_url: str, tmp_path: Path) -> None:
    """Every table of the SQLite schema exists on Postgres with the same columns in the same order."""
    sqlite = await open_database(tmp_path / "bot.db")
    try:
        await migrate(sqlite)
        tables = await sqlite.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name NOT LIKE 'messages_fts%'"
        )
        expected = {
            t["name"]: [c["name"] for c in await sqlite.fetchall(f"PRAGMA table_info({t['name']})")] for t in tables
        }
    finally:
        await sqlite.close()
    db = await open_postgres(postgres_url)
    try:
        await migrate(db)
        rows = await db.fetchall(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "ORDER BY table_name, ordinal_position"
        )
    finally:
        await db.close()
    actual: dict[str, list[str]] = {}
    for row in rows:
        if row["table_name"] not in WORKER_TABLES:  # the workers' leases exist on Postgres only
            actual.setdefault(row["table_name"], []).append(row["column_name"])
    assert actual == expected


async def test_workers_starting_together_apply_each_migration_once(postgres_url: str) -> None:
    workers = [await open_postgres(postgres_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(db) for db in workers))
        applied = sorted(name for names in results for name in names)
        assert applied == sorted(m.name for m in migrations_for("postgres"))
    finally:
        for db in workers:
            await db.close()


async def test_a_failed_block_rolls_back_and_the_pool_stays_usable(postgres_url: str) -> None:
    db = await open_postgres(postgres_url, max_size=1)
    try:
        await db.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            async with db.transaction() as connection:
                await connection.execute("INSERT INTO t VALUES (1)")
                await connection.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(RuntimeError):
            async with db.transaction() as connection:
                await connection.execute("INSERT INTO t VALUES (2)")
                raise RuntimeError("the caller failed")
        assert await db.fetchall("SELECT n FROM t") == []
    finally:
        await db.close()


async def test_a_cancelled_transaction_ends_and_frees_its_connection(postgres_url: str) -> None:
    db = await open_postgres(postgres_url, max_size=1)
    started = asyncio.Event()

    async def slow() -> None:
        async with db.transaction() as connection:
            await connection.execute("CREATE TABLE t (n INTEGER)")
            await connection.execute("INSERT INTO t VALUES (1)")
            started.set()
            await connection.execute("SELECT pg_sleep(30)")

    try:
        task = asyncio.create_task(slow())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The only connection is back, idle, and the cancelled transaction left nothing behind.
        row = await db.fetchone("SELECT to_regclass('t') IS NULL AS gone")
        assert row is not None and row["gone"]
    finally:
        await db.close()
