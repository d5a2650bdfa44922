"""The storage contract suite: every test here runs unchanged against each backend.

``storage`` is the bundle ``open_storage`` returns for a fresh database: a SQLite file in the test's temp folder,
or a new database on the session's throwaway Postgres server (tests/fakes/postgres.py; the Postgres leg is
skipped with a notice where no server can run, and fails instead in CI).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from storage.backends import Storage, open_storage

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/data/bot.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    async with open_storage(database_url) as opened:
        yield opened


async def new_thread(storage: Storage, name: str = "t", *, platform: str = "p") -> int:
    return await storage.log.ensure_thread(
        platform=platform, workspace="w", channel="c", thread=name, title=None, now=NOW
    )


async def say(
    storage: Storage,
    thread_id: int,
    platform_id: str,
    content: str,
    *,
    author: str = "u",
    role: str = "user",
    sent: datetime = NOW,
) -> int:
    row, _ = await storage.log.record_message(
        thread_id=thread_id,
        platform_message_id=platform_id,
        author_id=author,
        author_name=author.title(),
        role=role,
        content=content,
        sent_utc=sent,
        now=NOW,
    )
    return row.id
