"""The Postgres connection layer: one pool per process, transactions that always end, small fetch helpers.

Several ``threadkeeper run`` workers share one Postgres, each with a ``psycopg_pool.AsyncConnectionPool``
(psycopg 3, async). This module and its siblings in ``storage/postgres/`` are the only code that imports psycopg.

A transaction is one unit that always ends committed or rolled back. ``transaction()`` takes a connection from
the pool and opens ``conn.transaction()`` on it: an exception or a cancellation in the block rolls back; a
cancellation while a statement runs makes psycopg cancel it on the server, and a connection that comes back to
the pool in any state but idle is rolled back or discarded by the pool, so one interrupted caller can never
leave a pooled connection inside a transaction.

Rows are dicts (``psycopg.rows.dict_row``); statements use psycopg's ``%s`` / ``%(name)s`` placeholders.
Timestamps stay ISO-8601 UTC text in ``*_utc`` columns, as on SQLite, so every store returns the same values.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from storage.backends import DatabaseUnavailable, describe_url

log = logging.getLogger(__name__)

Params = Sequence[Any] | dict[str, Any]
Row = DictRow
Connection = AsyncConnection[DictRow]

DEFAULT_MIN_SIZE = 1
DEFAULT_MAX_SIZE = 10
CONNECT_TIMEOUT_S = 10.0


class PostgresDatabase:
    """The pool with the few ways the stores use it; repositories take one of these."""

    def __init__(self, pool: AsyncConnectionPool[Connection], url: str) -> None:
        self._pool = pool
        self.url = url

    @property
    def pool(self) -> AsyncConnectionPool[Connection]:
        return self._pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """One transaction on a pooled connection: committed on success, rolled back on any exception."""
        async with self._pool.connection() as connection, connection.transaction():
            yield connection

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A pooled connection in autocommit mode, for statements that refuse a transaction (VACUUM, LISTEN)."""
        async with self._pool.connection() as connection:
            await connection.set_autocommit(True)
            try:
                yield connection
            finally:
                await connection.set_autocommit(False)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement in its own transaction; return the rows it changed."""
        async with self.transaction() as connection:
            cursor = await connection.execute(sql, params)
            return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        async with self.transaction() as connection, connection.cursor() as cursor:
            await cursor.executemany(sql, list(rows))

    async def insert(self, sql: str, params: Params = ()) -> int | None:
        """Run one ``INSERT ... RETURNING id``; return the new id, or None when the insert was skipped."""
        row = await self.fetchone(sql, params)
        return None if row is None else int(next(iter(row.values())))

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        async with self.transaction() as connection:
            cursor = await connection.execute(sql, params)
            return await cursor.fetchall()

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        async with self.transaction() as connection:
            cursor = await connection.execute(sql, params)
            return await cursor.fetchone()

    async def vacuum(self, tables: Iterable[str]) -> None:
        """VACUUM the tables (outside any transaction): dead tuples holding erased text become free space."""
        async with self.connection() as connection:
            for table in tables:
                await connection.execute(f"VACUUM {table}")  # names come from our own code, never from users

    async def close(self) -> None:
        await self._pool.close()


async def _configure(connection: Connection) -> None:
    """Each new pooled connection speaks UTC, so ``now()`` and text timestamps agree across workers."""
    await connection.execute("SET TIME ZONE 'UTC'")
    await connection.commit()


async def open_postgres(
    url: str, *, min_size: int = DEFAULT_MIN_SIZE, max_size: int = DEFAULT_MAX_SIZE
) -> PostgresDatabase:
    """Open a pool on ``url`` once one connection works: a wrong URL or a server that is down fails here, at
    once and naming the server (the pool alone would retry quietly until its timeout)."""
    try:
        probe = await AsyncConnection.connect(url, connect_timeout=int(CONNECT_TIMEOUT_S))
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(f"cannot connect to {describe_url(url)}: {reason}") from None
    await probe.close()
    pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "autocommit": False},
        configure=_configure,
        open=False,
        timeout=CONNECT_TIMEOUT_S,
        name="threadkeeper",
    )
    try:
        await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
    except PoolTimeout:
        await pool.close()
        raise DatabaseUnavailable(f"cannot open {min_size} connection(s) to {describe_url(url)}") from None
    return PostgresDatabase(pool, url)
