"""The shared connection's transactions always end committed or rolled back, whatever interrupts them.

Each test interrupts one transaction the way production does (a stop timeout cancels a task mid-BEGIN, a
COMMIT fails on a deferred constraint), then checks that the next writes of every kind are really committed:
another sqlite3 connection, as a second process would, must see them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.migrations import migrate
from storage.sqlite.db import Database, open_database

INSERT_THREAD = (
    "INSERT INTO threads (platform, workspace, channel, thread, created_utc) VALUES ('p', 'w', 'c', ?, 'now')"
)
ORPHAN_MESSAGE = (
    "INSERT INTO messages (thread_id, platform_message_id, author_id, author_name, role, content, sent_utc, "
    "logged_utc) VALUES (999, 'm', 'u', 'U', 'user', 'no such thread', 'now', 'now')"
)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(tmp_path / "bot.db")
    await migrate(database)
    yield database
    await database.close()


def committed_threads(path: Path) -> list[str]:
    """What another connection (another process) sees: only committed rows."""
    with sqlite3.connect(path) as other:
        return [row[0] for row in other.execute("SELECT thread FROM threads ORDER BY id")]


async def write_in_every_way(db: Database) -> None:
    async with db.transaction() as connection:
        await connection.execute(INSERT_THREAD, ("by-transaction",))
    await db.run(lambda raw: raw.execute(INSERT_THREAD, ("by-run",)))
    await db.execute(INSERT_THREAD, ("by-execute",))


async def test_a_transaction_cancelled_during_begin_leaves_the_connection_usable(db: Database) -> None:
    blocker = sqlite3.connect(db.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock: our BEGIN IMMEDIATE waits on the busy timeout

    async def write() -> None:
        async with db.transaction() as connection:
            await connection.execute(INSERT_THREAD, ("cancelled",))

    task = asyncio.create_task(write())
    await asyncio.sleep(0.3)
    task.cancel()  # as an adapter's stop timeout does, while BEGIN is still waiting on the database thread
    blocker.execute("ROLLBACK")  # the BEGIN now goes through on the database thread
    blocker.close()
    with pytest.raises(asyncio.CancelledError):
        await task
    await write_in_every_way(db)
    assert committed_threads(db.path) == ["by-transaction", "by-run", "by-execute"]


async def test_a_failed_commit_in_a_transaction_is_rolled_back_and_the_next_ones_commit(db: Database) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        async with db.transaction() as connection:
            await connection.execute("PRAGMA defer_foreign_keys = ON")  # the violation surfaces at COMMIT
            await connection.execute(INSERT_THREAD, ("rolled-back",))
            await connection.execute(ORPHAN_MESSAGE)
    await write_in_every_way(db)
    assert committed_threads(db.path) == ["by-transaction", "by-run", "by-execute"]


async def test_a_failed_commit_in_run_is_rolled_back_and_the_next_ones_commit(db: Database) -> None:
    def doomed(raw: sqlite3.Connection) -> None:
        raw.execute("PRAGMA defer_foreign_keys = ON")
        raw.execute(INSERT_THREAD, ("rolled-back",))
        raw.execute(ORPHAN_MESSAGE)

    with pytest.raises(sqlite3.IntegrityError):
        await db.run(doomed)
    await write_in_every_way(db)
    assert committed_threads(db.path) == ["by-transaction", "by-run", "by-execute"]


async def test_a_run_cancelled_while_it_waits_still_ends_before_the_next_caller_starts(db: Database) -> None:
    blocker = sqlite3.connect(db.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    task = asyncio.create_task(db.run(lambda raw: raw.execute(INSERT_THREAD, ("cancelled-run",))))
    await asyncio.sleep(0.3)
    task.cancel()
    blocker.execute("ROLLBACK")
    blocker.close()
    with pytest.raises(asyncio.CancelledError):
        await task
    await write_in_every_way(db)
    # The cancelled run had already started on the database thread: it ran to its COMMIT, whole.
    assert committed_threads(db.path) == ["cancelled-run", "by-transaction", "by-run", "by-execute"]
