"""Bulk loading into Postgres for ``threadkeeper migrate-db``: emptiness, table order, COPY, sequences.

Everything here runs on one connection inside the caller's transaction, so a copy that fails anywhere leaves
the target as empty as it was. The table order comes from the schema's foreign keys (parents first), and the
columns from the catalog, so a store added later is copied without touching this module.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Sequence
from graphlib import TopologicalSorter
from typing import Any

from storage.postgres.db import Connection
from storage.postgres.leases import WORKER_TABLES

LEDGER = "_migrations"


async def tables_in_load_order(connection: Connection) -> list[str]:
    """Every table of the schema but the migration ledger and the workers' leases, each after the tables its
    foreign keys name."""
    cursor = await connection.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename != ALL(%s) ORDER BY tablename",
        ([LEDGER, *WORKER_TABLES],),  # the workers' leases are live state of a running deployment, not the log
    )
    tables = [str(row["tablename"]) for row in await cursor.fetchall()]
    cursor = await connection.execute(
        "SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent FROM pg_constraint "
        "WHERE contype = 'f' AND connamespace = 'public'::regnamespace"
    )
    graph: dict[str, set[str]] = {table: set() for table in tables}
    for row in await cursor.fetchall():
        if row["child"] != row["parent"]:
            graph[str(row["child"])].add(str(row["parent"]))
    return list(TopologicalSorter(graph).static_order())


async def columns_of(connection: Connection, table: str) -> list[str]:
    cursor = await connection.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s "
        "ORDER BY ordinal_position",
        (table,),
    )
    return [str(row["column_name"]) for row in await cursor.fetchall()]


async def row_counts(connection: Connection, tables: Sequence[str]) -> dict[str, int]:
    counts = {}
    for table in tables:
        cursor = await connection.execute(f"SELECT COUNT(*) AS n FROM {table}")  # names from the catalog
        row = await cursor.fetchone()
        counts[table] = 0 if row is None else int(row["n"])
    return counts


async def copy_rows(
    connection: Connection, table: str, columns: Sequence[str], batches: AsyncIterable[list[Sequence[Any]]]
) -> int:
    """COPY every row of ``batches`` into ``table``; ids are kept as given. Returns the rows written."""
    written = 0
    async with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        async for batch in batches:
            for row in batch:
                await copy.write_row(row)
            written += len(batch)
    return written


async def advance_sequences(connection: Connection, floors: dict[str, int]) -> None:
    """Each identity sequence continues after the highest id copied, or after ``floors[table]`` if higher.

    The floor carries SQLite's AUTOINCREMENT counter over: a card (or approval, or journal row) deleted before
    the move must not see its id handed out again after it.
    """
    cursor = await connection.execute(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'id' "
        "AND is_identity = 'YES'"
    )
    for row in await cursor.fetchall():
        table = str(row["table_name"])
        top = await (await connection.execute(f"SELECT COALESCE(MAX(id), 0) AS n FROM {table}")).fetchone()
        last = max(0 if top is None else int(top["n"]), floors.get(table, 0))
        await connection.execute(
            "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, %s)", (table, max(last, 1), last > 0)
        )
