"""One way in: ``open_storage(DATABASE_URL)`` gives the migrated stores of whichever backend the URL names.

``sqlite:///path`` (the default) is the embedded file, one process at a time; ``postgresql://…`` is a server
that any number of workers share. Callers get a :class:`Storage` bundle typed by the Protocols of
``storage/protocols.py`` and never construct a backend's classes themselves. Each backend is imported only when
its URL is opened, so a SQLite install never loads psycopg and a Postgres worker never loads aiosqlite. The
stores are the same classes on both (``storage/sql.py``); only the connection, search, the probe and the leases
come from the backend's folder.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from storage import migrations, protocols
from storage.erasure import ErasureStore
from storage.feedback import FeedbackStore
from storage.installations import OAuthStates, SlackInstallations
from storage.joins import ThreadJoins
from storage.journal import TurnJournal
from storage.leases import Leases, SoleOwner
from storage.log import ThreadLog
from storage.protocols import DatabaseProbe, ThreadSearch
from storage.sessions import CardStore, DeliveredEvents, SessionStore
from storage.shared_channels import SlackSharedChannels
from storage.sql import ReadinessProbe, SqlDatabase
from storage.thread_settings import ThreadSettings
from storage.trail import ApprovalStore, ToolTrail
from storage.urls import (
    POSTGRES_PREFIXES,
    SQLITE_PREFIX,
    Backend,
    DatabaseUnavailable,
    UnsupportedDatabaseURL,
    backend_of,
    database_path_from_url,
    describe_url,
)
from storage.usage import UsageLog

log = logging.getLogger(__name__)

__all__ = [
    "POSTGRES_PREFIXES",
    "SQLITE_PREFIX",
    "Backend",
    "DatabaseUnavailable",
    "Storage",
    "UnsupportedDatabaseURL",
    "backend_of",
    "database_path_from_url",
    "describe_url",
    "open_storage",
]


@dataclass(frozen=True, slots=True)
class Storage:
    """Every store of one database, and how to close it."""

    backend: Backend
    url: str
    log: protocols.ThreadLog
    joins: protocols.JoinStore  # threads being joined (a mention brought the bot in; the history still owed)
    sessions: protocols.SessionStore
    cards: protocols.CardStore
    events: protocols.DeliveredEvents
    erasures: protocols.ErasureStore
    search: ThreadSearch
    trail: protocols.ToolTrail
    journal: protocols.TurnJournal  # the trail's calls as they happen, with the steps that asked for them
    approvals: protocols.ApprovalStore
    usage: protocols.UsageLog
    feedback: protocols.FeedbackStore
    thread_settings: protocols.ThreadSettings
    slack_installations: protocols.SlackInstallations  # Slack OAuth distribution (bots/slack/install/)
    oauth_states: protocols.OAuthStates
    slack_shared_channels: protocols.SlackSharedChannels  # each Slack Connect channel's keeper, for every worker
    probe: DatabaseProbe
    leases: Leases  # who owns which thread and shard when several workers share the database
    applied: tuple[str, ...]  # migrations applied when it was opened
    database: object  # the backend's own handle (storage.sqlite.db.Database or PostgresDatabase), for its own tools
    close: Callable[[], Awaitable[None]]


async def _open_sqlite(url: str) -> tuple[SqlDatabase, ThreadSearch, Leases]:
    from storage.sqlite import db, search

    database = await db.open_database(database_path_from_url(url))
    return database, search.ThreadSearch(database), SoleOwner()


async def _open_postgres(url: str) -> tuple[SqlDatabase, ThreadSearch, Leases]:
    from storage.postgres import db, leases, search

    database = await db.open_postgres(url)
    return database, search.PostgresThreadSearch(database), leases.PostgresLeases(database)


@asynccontextmanager
async def open_storage(url: str, *, migrate: bool = True) -> AsyncIterator[Storage]:
    """The stores of the database ``url`` names, migrated first (unless ``migrate=False``), closed on exit."""
    backend = backend_of(url)
    opener = _open_sqlite if backend is Backend.SQLITE else _open_postgres
    database, search, leases = await opener(url)
    try:
        applied = await migrations.migrate(database) if migrate else []
    except BaseException:
        await database.close()
        raise
    if applied:
        log.info("database %s migrated: %s", describe_url(url), ", ".join(applied))
    storage = Storage(
        backend=backend,
        url=url,
        log=ThreadLog(database),
        joins=ThreadJoins(database),
        sessions=SessionStore(database),
        cards=CardStore(database),
        events=DeliveredEvents(database),
        erasures=ErasureStore(database),
        search=search,
        trail=ToolTrail(database),
        journal=TurnJournal(database),
        approvals=ApprovalStore(database),
        usage=UsageLog(database),
        feedback=FeedbackStore(database),
        thread_settings=ThreadSettings(database),
        slack_installations=SlackInstallations(database),
        oauth_states=OAuthStates(database),
        slack_shared_channels=SlackSharedChannels(database),
        probe=ReadinessProbe(database),
        leases=leases,
        applied=tuple(applied),
        database=database,
        close=database.close,
    )
    try:
        yield storage
    finally:
        await storage.close()
