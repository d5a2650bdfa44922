"""``threadkeeper migrate-db``: copy a whole SQLite log into an empty Postgres database, ids kept.

An existing install moves to Postgres without losing a thread: every table, every row, every id as it was (the
ids tie messages, sessions, cards, deliveries and the trail together, and card and approval ids are on buttons
already posted). Each identity sequence then continues after the highest id, or after SQLite's AUTOINCREMENT
counter or the highest id the erasure journal names when that is higher, so no deleted card's id, and no
forgotten thread's, comes back.

The copy refuses a target that holds any row: merging two logs would need ids remapped, and a half-understood
merge is how threads get lost. The whole copy is one Postgres transaction, so a failure leaves the target empty
and the command can simply be run again; the source is brought to the current schema first (as ``run`` would)
and otherwise only read. Row counts are compared table by table before the commit.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.migrations import migrate
from storage.postgres import load
from storage.postgres.db import open_postgres
from storage.sqlite.db import Database, open_database

BATCH_ROWS = 5000


class TransferRefused(Exception):
    """The copy cannot start (or was rolled back); the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class TransferReport:
    copied: dict[str, int]  # rows per table, in load order


async def _batches(db: Database, table: str, columns: Sequence[str]) -> AsyncIterator[list[Sequence[Any]]]:
    """The table's rows in rowid order, a batch at a time (keyset paging: no OFFSET, no whole table in memory)."""
    after = -(2**63)
    select = f"SELECT rowid AS _rowid, {', '.join(columns)} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?"
    while True:
        rows: list[sqlite3.Row] = await db.fetchall(select, (after, BATCH_ROWS))
        if not rows:
            return
        after = int(rows[-1]["_rowid"])
        yield [tuple(row)[1:] for row in rows]


async def _sqlite_tables(db: Database) -> list[str]:
    """The source's own tables: not SQLite's internals, not the FTS5 index, not the migration ledger."""
    rows = await db.fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name NOT LIKE 'messages_fts%' AND name != '_migrations'"
    )
    return [str(row["name"]) for row in rows]


async def _count(db: Database, table: str) -> int:
    row = await db.fetchone(f"SELECT COUNT(*) AS n FROM {table}")
    return 0 if row is None else int(row["n"])


async def _id_floors(db: Database) -> dict[str, int]:
    """Ids that must never be handed out again: SQLite's AUTOINCREMENT counters, and the ids of forgotten threads
    and messages that the erasure journal still names (a plain SQLite rowid would reuse them; an identity
    sequence, once past them, never does)."""
    floors = {str(row["name"]): int(row["seq"]) for row in await db.fetchall("SELECT name, seq FROM sqlite_sequence")}
    named = await db.fetchone(
        "SELECT COALESCE(MAX(thread_id), 0) AS threads, COALESCE(MAX(message_id), 0) AS messages FROM erasures"
    )
    if named is not None:
        floors["threads"] = max(floors.get("threads", 0), int(named["threads"]))
        floors["messages"] = max(floors.get("messages", 0), int(named["messages"]))
    return floors


async def copy_sqlite_to_postgres(source: Path, target_url: str) -> TransferReport:
    """Copy every table of the SQLite file ``source`` into the empty Postgres database at ``target_url``."""
    if not await asyncio.to_thread(source.is_file):
        raise TransferRefused(f"there is no SQLite file at {source}; check --from")
    sqlite = await open_database(source)
    try:
        await migrate(sqlite)
        postgres = await open_postgres(target_url, max_size=1)
        try:
            await migrate(postgres)
            async with postgres.transaction() as connection:
                tables = await load.tables_in_load_order(connection)
                missing = sorted(set(await _sqlite_tables(sqlite)) - set(tables))
                if missing:
                    raise TransferRefused(
                        f"the source has tables the Postgres schema lacks ({', '.join(missing)}); nothing was "
                        "copied. Run the same threadkeeper version that wrote the SQLite file"
                    )
                held = {t: n for t, n in (await load.row_counts(connection, tables)).items() if n}
                if held:
                    listed = ", ".join(f"{table}: {count}" for table, count in held.items())
                    raise TransferRefused(
                        f"the target database already holds rows ({listed}), so nothing was copied. migrate-db "
                        "copies into an empty database only: point --to at a new database, or drop and recreate "
                        "this one"
                    )
                copied = {}
                for table in tables:
                    columns = await load.columns_of(connection, table)
                    copied[table] = await load.copy_rows(connection, table, columns, _batches(sqlite, table, columns))
                expected = {t: await _count(sqlite, t) for t in tables}
                if copied != expected or await load.row_counts(connection, tables) != expected:
                    raise TransferRefused(f"row counts differ after the copy ({expected} expected); rolled back")
                await load.advance_sequences(connection, await _id_floors(sqlite))
        finally:
            await postgres.close()
    finally:
        await sqlite.close()
    return TransferReport(copied=copied)
