"""Read-only looks at the database for ``threadkeeper check`` and ``/readyz``.

:func:`inspect_database` changes nothing: a missing file is reported as "would be created", and an existing one
is opened read-only (SQLite's ``mode=ro``) to run ``PRAGMA integrity_check`` and compare the recorded
migrations with the code's list. :func:`probe_writable` takes SQLite's write lock on the running bot's own
connection and releases it at once, which is what "the database is writable" means to a bot.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import aiosqlite

from storage.db import Database
from storage.migrations import MIGRATIONS
from storage.records import WAITING_THREADS


@dataclass(frozen=True, slots=True)
class DatabaseReport:
    path: Path
    exists: bool
    writable: bool = True  # the file (or, when it does not exist, its nearest existing folder) is writable
    error: str | None = None  # it exists but cannot be opened or read
    integrity: str = "ok"
    pending: list[str] = field(default_factory=list)  # migrations the next start would apply
    unknown: list[str] = field(default_factory=list)  # applied migrations this code does not know (newer schema)
    free_bytes: int = 0


def _nearest_existing(path: Path) -> Path:
    folder = path.parent.resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _folder_facts(path: Path) -> tuple[bool, int]:
    """Whether the file can be created or written, and the free bytes where it lives."""
    folder = _nearest_existing(path)
    target = path if path.is_file() else folder
    return os.access(target, os.W_OK) and os.access(folder, os.W_OK | os.X_OK), shutil.disk_usage(folder).free


async def inspect_database(path: Path) -> DatabaseReport:
    """What ``threadkeeper run`` would find at ``path``, without creating or changing anything."""
    exists = await asyncio.to_thread(path.is_file)
    writable, free = await asyncio.to_thread(_folder_facts, path)
    known = [migration.__name__ for migration in MIGRATIONS]
    if not exists:
        return DatabaseReport(path=path, exists=False, writable=writable, pending=known, free_bytes=free)
    try:
        absolute = await asyncio.to_thread(path.resolve)
        connection = await aiosqlite.connect(f"file:{absolute}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return DatabaseReport(path=path, exists=True, writable=writable, error=str(exc), free_bytes=free)
    try:
        rows = await connection.execute_fetchall("PRAGMA integrity_check")
        integrity = "; ".join(str(row[0]) for row in rows)[:300]
        tables = await connection.execute_fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_migrations'"
        )
        applied: list[str] = []
        if tables:
            applied = [str(row[0]) for row in await connection.execute_fetchall("SELECT name FROM _migrations")]
    except sqlite3.Error as exc:
        return DatabaseReport(path=path, exists=True, writable=writable, error=str(exc), free_bytes=free)
    finally:
        await connection.close()
    return DatabaseReport(
        path=path,
        exists=True,
        writable=writable,
        integrity=integrity,
        pending=[name for name in known if name not in applied],
        unknown=[name for name in applied if name not in known],
        free_bytes=free,
    )


async def probe_writable(db: Database) -> bool:
    """True when this connection can take SQLite's write lock (then released without writing anything)."""
    try:
        async with db.transaction():
            pass
    except sqlite3.Error:
        return False
    return True


async def waiting_thread_count(db: Database) -> int:
    """Threads holding user messages that no posted reply has covered yet."""
    row = await db.fetchone(WAITING_THREADS)
    return 0 if row is None else int(row["n"])


class SqliteProbe:
    """The DatabaseProbe of a running bot on SQLite."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def writable(self) -> bool:
        return await probe_writable(self._db)

    async def waiting_threads(self) -> int:
        return await waiting_thread_count(self._db)
