"""Read-only looks at the database for ``threadkeeper check`` and ``/readyz``.

:func:`inspect_database` changes nothing: a missing file is reported as "would be created", and an existing one
is opened read-only (SQLite's ``mode=ro``) to run ``PRAGMA integrity_check`` and compare the recorded
migrations with the code's list. The running bot's probe is ``storage.sql.ReadinessProbe``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import aiosqlite

from storage.migrations import migrations_for


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
    known = [migration.name for migration in migrations_for("sqlite")]
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
