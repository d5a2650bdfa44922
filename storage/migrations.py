"""Schema migrations: each step of ``storage/revisions.py`` applied once, in its own transaction, by name.

Steps are recorded by name in ``_migrations`` and run at start-up, before any adapter connects. Several workers
may start at once against one Postgres: each step's transaction first takes ``MIGRATION_LOCK``
(``Transaction.serialize``, a lock that ends with the transaction), so the second worker waits, then finds the
step recorded and skips it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from storage.revisions import MIGRATIONS, Migration
from storage.sql import SqlDatabase

__all__ = ["MIGRATIONS", "Migration", "applied_migrations", "migrate", "migrations_for"]

# An arbitrary constant shared by every threadkeeper worker: "the schema is being changed".
MIGRATION_LOCK = 7_318_112_001

_CREATE_LEDGER = "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_utc TEXT NOT NULL)"


def migrations_for(dialect: str, migrations: Sequence[Migration] | None = None) -> list[Migration]:
    """The steps the backend named ``dialect`` applies, in order."""
    return [m for m in (MIGRATIONS if migrations is None else migrations) if m.only in (None, dialect)]


async def applied_migrations(db: SqlDatabase) -> list[str]:
    """Names recorded in ``_migrations``, oldest first; empty when the ledger does not exist yet."""
    row = await db.fetchone("{ledger_exists}")
    if row is None or not row["n"]:
        return []
    rows = await db.fetchall("SELECT name FROM _migrations ORDER BY applied_utc, name")
    return [str(row["name"]) for row in rows]


async def migrate(db: SqlDatabase, migrations: Sequence[Migration] | None = None) -> list[str]:
    """Apply every step not yet recorded, each in its own locked transaction; return the names applied now.

    A table SQLite rebuilds (m002, m008) is dropped, and with foreign keys on, DROP TABLE first deletes every row,
    cascading into the tables that reference it. SQLite's own procedure for such changes: keys off around the
    migrations (the pragma cannot change inside a transaction), and a foreign_key_check before each commit
    (``{foreign_keys_off}`` and its siblings do nothing on Postgres, whose schema changes never cascade).
    """
    dialect = db.dialect.name
    done = set(await applied_migrations(db))
    pending = [m for m in migrations_for(dialect, migrations) if m.name not in done]
    if not pending:
        return []
    applied = []
    await db.execute("{foreign_keys_off}")
    try:
        for migration in pending:
            async with db.atomic() as tx:
                await tx.serialize(MIGRATION_LOCK)
                await tx.execute(_CREATE_LEDGER)
                if await tx.fetchone("SELECT 1 AS done FROM _migrations WHERE name = ?", (migration.name,)):
                    continue  # another worker applied it meanwhile
                for statement in migration.statements_for(dialect):
                    await tx.execute(statement)
                if broken := await tx.fetchall("{foreign_key_check}"):
                    first = broken[0]
                    raise RuntimeError(
                        f"migration {migration.name} would leave rows pointing nowhere: {first['table']} row "
                        f"{first['rowid']} -> {first['parent']}"
                    )
                await tx.execute(
                    "INSERT INTO _migrations (name, applied_utc) VALUES (?, ?)",
                    (migration.name, datetime.now(UTC).isoformat()),
                )
            applied.append(migration.name)
    finally:
        await db.execute("{foreign_keys_on}")
    return applied
