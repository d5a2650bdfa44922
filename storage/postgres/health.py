"""Read-only looks at a Postgres database for ``threadkeeper check`` and ``/readyz``.

:func:`inspect_postgres` connects once (no pool), reads the recorded migrations and changes nothing: a missing
ledger means "every migration pending". The running bot's probe is ``storage.sql.ReadinessProbe``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg.rows import dict_row

from storage.migrations import migrations_for
from storage.postgres.db import CONNECT_TIMEOUT_S


@dataclass(frozen=True, slots=True)
class PostgresReport:
    server_version: str = ""
    error: str | None = None  # the server cannot be reached or read
    read_only: bool = False
    pending: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


async def inspect_postgres(url: str) -> PostgresReport:
    """What ``threadkeeper run`` would find at ``url``, without changing anything."""
    known = [migration.name for migration in migrations_for("postgres")]
    try:
        connection = await psycopg.AsyncConnection.connect(
            url, connect_timeout=int(CONNECT_TIMEOUT_S), row_factory=dict_row, autocommit=True
        )
    except psycopg.Error as exc:
        return PostgresReport(error=str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    try:
        version = await (await connection.execute("SHOW server_version")).fetchone()
        standby = await (await connection.execute("SELECT pg_is_in_recovery() AS standby")).fetchone()
        ledger = await (await connection.execute("SELECT to_regclass('_migrations') IS NOT NULL AS present")).fetchone()
        applied: list[str] = []
        if ledger is not None and ledger["present"]:
            rows = await (await connection.execute("SELECT name FROM _migrations")).fetchall()
            applied = [str(row["name"]) for row in rows]
    except psycopg.Error as exc:
        return PostgresReport(error=str(exc).strip())
    finally:
        await connection.close()
    return PostgresReport(
        server_version="" if version is None else str(version["server_version"]),
        read_only=bool(standby and standby["standby"]),
        pending=[name for name in known if name not in applied],
        unknown=[name for name in applied if name not in known],
    )
