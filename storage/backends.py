"""One way in: ``open_storage(DATABASE_URL)`` gives the migrated stores of whichever backend the URL names.

``sqlite:///path`` (the default) is the embedded file, one process at a time; ``postgresql://…`` is a server
that any number of workers share. Callers get a :class:`Storage` bundle typed by the Protocols of
``storage/protocols.py`` and never construct a backend's classes themselves. Each backend is imported only when
its URL is opened, so a SQLite install never loads psycopg and a Postgres worker never loads aiosqlite.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from storage.leases import Leases, SoleOwner
from storage.protocols import (
    ApprovalStore,
    CardStore,
    DatabaseProbe,
    DeliveredEvents,
    ErasureStore,
    FeedbackStore,
    SessionStore,
    ThreadLog,
    ThreadSearch,
    ThreadSettings,
    ToolTrail,
    TurnJournal,
    UsageLog,
)

log = logging.getLogger(__name__)

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


class Backend(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"


class UnsupportedDatabaseURL(ValueError):
    """DATABASE_URL names neither a SQLite file nor a Postgres server."""


class DatabaseUnavailable(Exception):
    """The database server cannot be reached or refuses us; the message names it (without its password)."""


def backend_of(url: str) -> Backend:
    """Which backend ``url`` names; a clear error for anything else."""
    if url.startswith(SQLITE_PREFIX):
        return Backend.SQLITE
    if url.startswith(POSTGRES_PREFIXES):
        return Backend.POSTGRES
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise UnsupportedDatabaseURL(
        f"DATABASE_URL must name a SQLite file or a Postgres server (got a {scheme!r} URL); use "
        "sqlite:///relative/path.db, sqlite:////absolute/path.db or postgresql://user:password@host:5432/dbname"
    )


def database_path_from_url(url: str) -> Path:
    """``sqlite:///relative/path`` or ``sqlite:////absolute/path`` to a Path."""
    if backend_of(url) is not Backend.SQLITE:
        raise UnsupportedDatabaseURL(f"{url.split(':', 1)[0]!r} URL names no SQLite file")
    rest = url[len(SQLITE_PREFIX) :]
    if not rest or rest.endswith("/"):
        raise UnsupportedDatabaseURL("the SQLite URL names no file, e.g. sqlite:///data/threadkeeper.db")
    return Path(rest)


def describe_url(url: str) -> str:
    """The URL without its password (in the user part or a ``password=`` parameter), for logs and messages."""
    if backend_of(url) is Backend.SQLITE:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    query = urlencode([(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)], safe="*/")
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


@dataclass(frozen=True, slots=True)
class Storage:
    """Every store of one database, and how to close it."""

    backend: Backend
    url: str
    log: ThreadLog
    sessions: SessionStore
    cards: CardStore
    events: DeliveredEvents
    erasures: ErasureStore
    search: ThreadSearch
    trail: ToolTrail
    journal: TurnJournal  # the trail's calls as they happen, with the steps that asked for them
    approvals: ApprovalStore
    usage: UsageLog
    feedback: FeedbackStore
    thread_settings: ThreadSettings
    probe: DatabaseProbe
    leases: Leases  # who owns which thread and shard when several workers share the database
    applied: tuple[str, ...]  # migrations applied when it was opened
    database: object  # the backend's own handle (storage.db.Database or PostgresDatabase), for its own tools
    close: Callable[[], Awaitable[None]]


async def _open_sqlite(url: str, *, migrate: bool) -> Storage:
    from storage import (
        db,
        erasure,
        feedback,
        health,
        journal,
        log,
        migrations,
        search,
        sessions,
        thread_settings,
        trail,
        usage,
    )

    database = await db.open_database(database_path_from_url(url))
    try:
        applied = await migrations.migrate(database) if migrate else []
    except BaseException:
        await database.close()
        raise
    return Storage(
        backend=Backend.SQLITE,
        url=url,
        log=log.ThreadLog(database),
        sessions=sessions.SessionStore(database),
        cards=sessions.CardStore(database),
        events=sessions.DeliveredEvents(database),
        erasures=erasure.ErasureStore(database),
        search=search.ThreadSearch(database),
        trail=trail.ToolTrail(database),
        journal=journal.TurnJournal(database),
        approvals=trail.ApprovalStore(database),
        usage=usage.UsageLog(database),
        feedback=feedback.FeedbackStore(database),
        thread_settings=thread_settings.ThreadSettings(database),
        probe=health.SqliteProbe(database),
        leases=SoleOwner(),
        applied=tuple(applied),
        database=database,
        close=database.close,
    )


async def _open_postgres(url: str, *, migrate: bool) -> Storage:
    from storage.postgres import (
        db,
        erasure,
        feedback,
        health,
        journal,
        leases,
        log,
        migrations,
        search,
        sessions,
        thread_settings,
        trail,
        usage,
    )

    database = await db.open_postgres(url)
    try:
        applied = await migrations.migrate(database) if migrate else []
    except BaseException:
        await database.close()
        raise
    return Storage(
        backend=Backend.POSTGRES,
        url=url,
        log=log.PostgresThreadLog(database),
        sessions=sessions.PostgresSessionStore(database),
        cards=sessions.PostgresCardStore(database),
        events=sessions.PostgresDeliveredEvents(database),
        erasures=erasure.PostgresErasureStore(database),
        search=search.PostgresThreadSearch(database),
        trail=trail.PostgresToolTrail(database),
        journal=journal.PostgresTurnJournal(database),
        approvals=trail.PostgresApprovalStore(database),
        usage=usage.PostgresUsageLog(database),
        feedback=feedback.PostgresFeedbackStore(database),
        thread_settings=thread_settings.PostgresThreadSettings(database),
        probe=health.PostgresProbe(database),
        leases=leases.PostgresLeases(database),
        applied=tuple(applied),
        database=database,
        close=database.close,
    )


@asynccontextmanager
async def open_storage(url: str, *, migrate: bool = True) -> AsyncIterator[Storage]:
    """The stores of the database ``url`` names, migrated first (unless ``migrate=False``), closed on exit."""
    opener = _open_sqlite if backend_of(url) is Backend.SQLITE else _open_postgres
    storage = await opener(url, migrate=migrate)
    if storage.applied:
        log.info("database %s migrated: %s", describe_url(url), ", ".join(storage.applied))
    try:
        yield storage
    finally:
        await storage.close()
