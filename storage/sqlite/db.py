"""The SQLite connection: opened once, guarded by one lock, configured for a long-running bot.

One aiosqlite connection serves the whole process. aiosqlite runs every statement on its own thread, so the
event loop never blocks on disk; an ``asyncio.Lock`` keeps a multi-statement transaction of one coroutine from
interleaving with statements of another on the shared connection.

A transaction is one unit that always ends committed or rolled back. Cancelling a coroutine does not stop a
statement aiosqlite already queued on its thread, so every step waits for its statement to finish before a
cancellation propagates (``_on_thread``), a failed COMMIT (a deferred constraint, disk full, an I/O error) is
rolled back on the spot, and whoever takes the connection next first rolls back any transaction still open
(``_heal``): one interrupted caller can never leave the shared connection inside a transaction for good.

The file is created 0600 before SQLite touches it (SQLite gives its -wal and -shm files the same mode), in a
folder created 0700 when missing.

The stores (``storage/log.py`` and its siblings) see this class through ``storage.sql.SqlDatabase``: their
statements are SQLite's already but for the few ``{words}`` of :data:`DIALECT`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import aiosqlite

from storage.sql import Dialect, Params
from storage.sqlite.log_batch import typed_error, write_messages

if TYPE_CHECKING:
    from storage.leases import Fence
    from storage.records import LoggedMessage, NewMessage

BUSY_TIMEOUT_MS = 5000

DIALECT = Dialect(
    "sqlite",
    {
        "in_ids": "IN (SELECT value FROM json_each(?))",
        "for_update": "",
        "for_update_of_m": "",
        "cited": "json_each(tool_calls.cites_json) AS cited",
        "id": "id INTEGER PRIMARY KEY",
        "id_never_reused": "id INTEGER PRIMARY KEY AUTOINCREMENT",
        "bigint": "INTEGER",
        "real": "REAL",
        "now_s": "((julianday('now') - 2440587.5) * 86400.0)",
        "foreign_keys_off": "PRAGMA foreign_keys=OFF",
        "foreign_keys_on": "PRAGMA foreign_keys=ON",
        "foreign_key_check": "PRAGMA foreign_key_check",
        "ledger_exists": "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = '_migrations'",
    },
    array=json.dumps,
)

log = logging.getLogger(__name__)

Row = sqlite3.Row
T = TypeVar("T")


def _prepare_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
    else:
        os.close(fd)


def _heal(raw: sqlite3.Connection) -> None:
    """Roll back a transaction an interrupted caller left open, so the next one starts clean."""
    if raw.in_transaction:
        log.warning("rolling back a transaction an interrupted caller left open on the shared connection")
        raw.execute("ROLLBACK")


def _begin(raw: sqlite3.Connection) -> None:
    _heal(raw)
    raw.execute("BEGIN IMMEDIATE")


def _commit(raw: sqlite3.Connection) -> None:
    """COMMIT, or roll back when it fails: SQLite keeps a transaction open after a failed COMMIT."""
    try:
        raw.execute("COMMIT")
    except BaseException:
        _rollback(raw)
        raise


def _rollback(raw: sqlite3.Connection) -> None:
    if raw.in_transaction:
        raw.execute("ROLLBACK")


def _rowcount(raw: sqlite3.Connection, sql: str, params: Params) -> int:
    with closing(raw.execute(sql, params)) as cursor:
        return cursor.rowcount


def _one(raw: sqlite3.Connection, sql: str, params: Params) -> Row | None:
    with closing(raw.execute(sql, params)) as cursor:
        row: Row | None = cursor.fetchone()
        return row


def _all(raw: sqlite3.Connection, sql: str, params: Params) -> list[Row]:
    with closing(raw.execute(sql, params)) as cursor:
        return list(cursor.fetchall())


class SqliteTransaction:
    """``storage.sql.Transaction`` inside :meth:`Database.atomic`: each statement one hop to the database thread."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def execute(self, sql: str, params: Params = ()) -> int:
        return await self._db._on_thread(lambda raw: _rowcount(raw, DIALECT.sql(sql), params))

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        await self._db._on_thread(lambda raw: raw.executemany(DIALECT.sql(sql), rows).close())

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        return await self._db._on_thread(lambda raw: _one(raw, DIALECT.sql(sql), params))

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return await self._db._on_thread(lambda raw: _all(raw, DIALECT.sql(sql), params))

    async def serialize(self, key: int) -> None:
        """Nothing to take: the IMMEDIATE transaction holds SQLite's only write lock."""

    async def check_fence(self, fence: Fence | None) -> None:
        """Nothing to check: SQLite has one worker, which owns every thread (``storage/leases.py``)."""


class Database:
    """The shared connection with a lock; repositories take one of these."""

    dialect = DIALECT

    def __init__(self, connection: aiosqlite.Connection, path: Path) -> None:
        self._connection = connection
        self._lock = asyncio.Lock()
        self.path = path

    async def _on_thread(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on aiosqlite's thread and wait for it to end, even if the caller is cancelled meanwhile.

        The statement runs to its end whatever happens to the awaiting coroutine; waiting for it keeps the
        connection's state known (and the lock held) until it has. A cancellation is re-raised afterwards.
        """
        call = self._connection._execute(lambda: work(self._connection._conn))  # type: ignore[no-untyped-call]
        step = asyncio.ensure_future(call)
        cancelled: asyncio.CancelledError | None = None
        while not step.done():
            try:
                await asyncio.wait({step})
            except asyncio.CancelledError as exc:
                cancelled = exc
        if cancelled is not None:
            if not step.cancelled():
                step.exception()  # retrieved: the cancellation is what the caller hears about
            raise cancelled
        return step.result()  # type: ignore[no-any-return]

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """An IMMEDIATE transaction: committed on success, rolled back on any exception or cancellation."""
        async with self._lock:
            try:
                await self._on_thread(_begin)
            except BaseException:
                await self._on_thread(_rollback)  # cancelled mid-BEGIN: the BEGIN may have happened anyway
                raise
            try:
                yield self._connection
            except BaseException:
                await self._on_thread(_rollback)
                raise
            await self._on_thread(_commit)

    @asynccontextmanager
    async def atomic(self) -> AsyncIterator[SqliteTransaction]:
        """:meth:`transaction` as the stores see it (``storage.sql.Transaction``)."""
        async with self.transaction():
            yield SqliteTransaction(self)

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` against the raw connection on aiosqlite's worker thread, in one IMMEDIATE transaction.

        One hop to the database thread however many statements ``work`` runs: the group commit of the log
        uses it to write a whole batch of messages at once. ``work`` must not touch the event loop.
        """

        def in_transaction(raw: sqlite3.Connection) -> T:
            _begin(raw)
            try:
                result = work(raw)
            except BaseException:
                _rollback(raw)
                raise
            _commit(raw)
            return result

        async with self._lock:
            return await self._on_thread(in_transaction)

    async def _statement(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """One statement in its own (autocommit) transaction, after healing a leaked one."""

        def healed(raw: sqlite3.Connection) -> T:
            _heal(raw)
            return work(raw)

        async with self._lock:
            return await self._on_thread(healed)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement in its own (autocommit) transaction; return the rows it changed."""
        return await self._statement(lambda raw: _rowcount(raw, DIALECT.sql(sql), params))

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self.run(lambda raw: raw.executemany(DIALECT.sql(sql), rows).close())

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return await self._statement(lambda raw: _all(raw, DIALECT.sql(sql), params))

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        return await self._statement(lambda raw: _one(raw, DIALECT.sql(sql), params))

    async def script(self, statements: Sequence[tuple[str, Params]], *, fence: Fence | None = None) -> list[Row | None]:
        """In one hop (``fence`` ignored: SQLite's one worker owns every thread)."""
        translated = [(DIALECT.sql(sql), params) for sql, params in statements]
        return await self.run(lambda raw: [_one(raw, sql, params) for sql, params in translated])

    async def write_messages(self, news: list[NewMessage]) -> list[tuple[LoggedMessage, bool]]:
        """The log's group-commit batch: every row in one transaction, in one hop to the database thread."""
        return await self.run(lambda raw: write_messages(news, raw))

    async def reserve_message_ids(self, count: int) -> list[int]:
        """``count`` message ids no insert will take by itself: AUTOINCREMENT's counter moves past them."""

        def reserve(raw: sqlite3.Connection) -> list[int]:
            raw.execute(
                "INSERT INTO sqlite_sequence (name, seq) SELECT 'messages', COALESCE(MAX(id), 0) FROM messages "
                "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'messages')"
            )
            row = raw.execute(
                "UPDATE sqlite_sequence SET seq = seq + ? WHERE name = 'messages' RETURNING seq", (count,)
            ).fetchone()
            last = int(row[0])
            return list(range(last - count + 1, last + 1))

        return await self.run(reserve)

    def typed_error(self, exc: BaseException) -> BaseException:
        return typed_error(exc)

    async def scrub(self) -> None:
        """Merge the search index (dropping what it only marked deleted), then checkpoint and truncate the WAL."""
        await self.execute("INSERT INTO messages_fts (messages_fts) VALUES ('optimize')")
        await self.checkpoint()

    async def writable(self) -> bool:
        """Take SQLite's write lock on this connection and release it at once, writing nothing."""
        try:
            async with self.transaction():
                pass
        except sqlite3.Error:
            return False
        return True

    async def checkpoint(self) -> bool:
        """Copy the WAL into the database file and truncate it to zero bytes; False when a reader blocked it.

        Called after anything is forgotten: with ``secure_delete`` on, the old text's pages are zeroed in the
        file, and truncating the WAL removes the frames that still held it.
        """
        async with self._lock:
            cursor = await self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            row = await cursor.fetchone()
            await cursor.close()
        blocked = row is not None and row[0] != 0
        if blocked:
            log.warning("the WAL checkpoint after a deletion was blocked by a reader; it will run at the next one")
        return not blocked

    async def close(self) -> None:
        async with self._lock:
            await self._connection.close()


async def open_database(path: Path) -> Database:
    """Create the file (0600) and folder if needed, connect, and set the pragmas a bot wants."""
    await asyncio.to_thread(_prepare_file, path)
    connection = await aiosqlite.connect(path, isolation_level=None)
    connection.row_factory = sqlite3.Row
    for pragma in (
        "PRAGMA journal_mode=WAL",
        # FULL: Slack events are acknowledged once logged, so a commit must survive a power loss, not only a
        # crash of this process (NORMAL in WAL mode may lose the last commits on power loss).
        "PRAGMA synchronous=FULL",
        # Deleted text is overwritten with zeros instead of lingering in free pages (see storage/erasure.py).
        "PRAGMA secure_delete=ON",
        "PRAGMA foreign_keys=ON",
        f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    ):
        await connection.execute(pragma)
    return Database(connection, path)
