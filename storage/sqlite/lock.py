"""One bot process per database: an exclusive lock on a file beside it, held for the process's lifetime.

Two bots on one SQLite file would both resume every waiting thread and reset each other's catch-ups (a rolling
deploy with overlap, or ``threadkeeper chat`` pointed at the production file). ``fcntl.flock`` is released by
the kernel when the process ends, however it ends, so a crash never leaves a stale lock behind; the file only
says who holds it (pid, host, command, since when) so the refusal can name the first process. The file itself
stays in place: unlinking a lock file races with the next process opening it.

Commands that only read or purge (export, forget) do not take the lock; ``migrate-db`` takes it, so the log
cannot change while it is copied. Postgres needs no such lock: several workers share it by design.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds a database: written into the lock file by the holder."""

    pid: int | None
    host: str
    command: str
    started_utc: str

    def describe(self) -> str:
        pid = "an unknown pid" if self.pid is None else f"pid {self.pid}"
        return f"{pid} on {self.host}, running `{self.command}` since {self.started_utc}"


class DatabaseInUse(Exception):
    """Another process holds the database's lock."""

    def __init__(self, database: Path, holder: LockHolder) -> None:
        super().__init__(
            f"The database {database} is in use by another threadkeeper process ({holder.describe()}). A SQLite "
            "file serves one process at a time (two would answer threads twice): stop that one first, or set "
            "DATABASE_URL to another file. To run several workers on one log, use Postgres: copy this one with "
            "`threadkeeper migrate-db --from sqlite:///... --to postgresql://...` and set DATABASE_URL to it."
        )
        self.holder = holder


def lock_path_for(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


@contextlib.contextmanager
def exclusive_database_lock(database: Path, *, command: str) -> Iterator[LockHolder]:
    """Hold the database's lock for the block, or raise DatabaseInUse naming whoever holds it now."""
    path = lock_path_for(database)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatabaseInUse(database, _read_holder(fd)) from None
        holder = LockHolder(os.getpid(), socket.gethostname(), command, datetime.now(UTC).isoformat())
        _write_holder(fd, holder)
        try:
            yield holder
        finally:
            os.ftruncate(fd, 0)  # nobody holds it any more; the kernel drops the lock with the descriptor
    finally:
        os.close(fd)


def _write_holder(fd: int, holder: LockHolder) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(asdict(holder)).encode(), 0)
    os.fsync(fd)


def _read_holder(fd: int) -> LockHolder:
    """What the holder wrote; a holder caught between taking the lock and writing is "unknown"."""
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return LockHolder(
            pid=int(data["pid"]), host=str(data["host"]), command=str(data["command"]), started_utc=data["started_utc"]
        )
    except (ValueError, KeyError, TypeError):
        return LockHolder(pid=None, host="an unknown host", command="threadkeeper", started_utc="an unknown time")
