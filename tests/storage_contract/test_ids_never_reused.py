"""Ids that the erasure journal, buttons and the trail refer to are never handed out again, on each backend;
and a database made by the previous release upgrades in place (m008) with every row kept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from storage.backends import Storage, database_path_from_url, open_storage
from storage.migrations import migrations_for
from storage.records import KIND_THREAD
from tests.storage_contract.conftest import NOW, new_thread, say
from tests.storage_contract.test_erasure_copies import rows

NEW = "m008_ids_never_reused_and_title_source"


async def test_a_forgotten_newest_thread_message_session_card_approval_and_journal_row_keep_their_ids(
    storage: Storage,
) -> None:
    kept = await new_thread(storage, "kept")
    await say(storage, kept, "k1", "hello")
    newest = await new_thread(storage, "newest")
    newest_message = await say(storage, newest, "n1", "the newest message")
    card, _ = await storage.cards.open_card(thread_id=newest, now=NOW)
    session = await storage.sessions.record(thread_id=newest, origin="fresh", model="m", started_utc=NOW)
    approval = await storage.approvals.open(thread_id=newest, tool="t", arguments_preview="{}", now=NOW)
    await storage.erasures.forget_thread(thread_id=newest, now=NOW)
    [journal] = await storage.erasures.since(after_id=0)
    assert (journal.thread_id, journal.kind) == (newest, KIND_THREAD)
    assert await storage.erasures.prune_journal(before=NOW + timedelta(days=36500)) == 1

    again = await new_thread(storage, "next")
    assert again > newest
    assert await say(storage, again, "x1", "a new message") > newest_message
    new_card, _ = await storage.cards.open_card(thread_id=again, now=NOW)
    assert await storage.sessions.record(thread_id=again, origin="fresh", model="m", started_utc=NOW) > session
    assert new_card.id > card.id
    assert await storage.approvals.open(thread_id=again, tool="t", arguments_preview="{}", now=NOW) > approval
    await storage.erasures.delete_message(thread_id=again, platform_message_id="x1", deleted_utc=NOW)
    [entry] = await storage.erasures.since(after_id=0)
    assert entry.id > journal.id


class _Raw:
    """The previous release's schema, written to with plain SQL (``?`` placeholders on both backends)."""

    def __init__(self, database: Any, *, postgres: bool) -> None:
        self._database = database
        self._postgres = postgres

    async def insert(self, table: str, **values: object) -> None:
        marks = ", ".join("%s" if self._postgres else "?" for _ in values)
        await self._database.execute(
            f"INSERT INTO {table} ({', '.join(values)}) VALUES ({marks})", tuple(values.values())
        )

    async def delete_thread(self, thread_id: int) -> None:
        await self._database.execute(f"DELETE FROM threads WHERE id = {int(thread_id)}")

    async def settle_ids(self) -> None:
        """Postgres: rows inserted with their ids leave the identity sequences behind; a real database's
        sequences have handed out every id it ever held (``migrate-db`` advances them the same way)."""
        if self._postgres:
            for table in ("threads", "messages", "sessions", "erasures"):
                await self._database.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 9)")


@asynccontextmanager
async def _previous_release(url: str) -> AsyncIterator[_Raw]:
    """A database migrated up to the migration before m008, closed on exit (later ones, like m012's new column on
    the messages m008 rebuilds, come after it)."""
    from storage.migrations import MIGRATIONS, migrate

    if url.startswith("sqlite"):
        from storage.sqlite.db import open_database

        db: Any = await open_database(database_path_from_url(url))
    else:
        from storage.postgres.db import open_postgres

        db = await open_postgres(url)
    await migrate(db, MIGRATIONS[: [m.name for m in MIGRATIONS].index(NEW)])
    try:
        yield _Raw(db, postgres=not url.startswith("sqlite"))
    finally:
        await db.close()


async def test_a_database_of_the_previous_release_upgrades_in_place_keeping_every_row(database_url: str) -> None:
    when = NOW.isoformat()
    async with _previous_release(database_url) as old:
        threads = [
            (1, "t1", "my password is hunter2, rotate it"),  # made from m1, deleted since
            (2, "t2", "Deploy plan for tomorrow…"),  # made from m2's long first line, intact
            (3, "t3", "Incident room"),  # the platform's name: no message starts with it
            (4, "t4", None),
        ]
        for tid, name, title in threads:
            await old.insert(
                "threads", id=tid, platform="p", workspace="w", channel="c", thread=name, title=title,
                created_utc=when,
            )  # fmt: skip
        messages = [
            (1, 1, "m1", "", when),
            (2, 2, "m2", "Deploy plan for tomorrow at nine, then the rollback drill", None),
            (3, 3, "m3", "what happened at 3am?", None),
            (4, 4, "m4", "searchable words here", None),
        ]
        for mid, tid, platform_id, content, deleted in messages:
            await old.insert(
                "messages", id=mid, thread_id=tid, platform_message_id=platform_id, author_id="u", author_name="U",
                role="user", content=content, reply_state="answered", sent_utc=when, logged_utc=when,
                deleted_utc=deleted,
            )  # fmt: skip
        await old.insert("sessions", thread_id=2, origin="fresh", model="m", started_utc=when, summary="s",
                         summary_through_message_id=2)  # fmt: skip
        await old.insert("delivered_events", platform="p", event_key="e2", message_id=2, received_utc=when)
        # Thread 9 and its message 9 were the newest, and were forgotten: only the journal still names them.
        await old.insert("threads", id=9, platform="p", workspace="w", channel="c", thread="t9", created_utc=when)
        await old.insert(
            "messages", id=9, thread_id=9, platform_message_id="m9", author_id="u", author_name="U", role="user",
            content="", sent_utc=when, logged_utc=when, deleted_utc=when,
        )  # fmt: skip
        await old.insert("erasures", thread_id=9, message_id=9, kind="deleted", created_utc=when)
        await old.insert("erasures", thread_id=9, message_id=None, kind="thread", created_utc=when)
        await old.settle_ids()
        await old.delete_thread(9)

    async with open_storage(database_url) as storage:
        later = migrations_for("sqlite" if database_url.startswith("sqlite") else "postgres")
        assert storage.applied == tuple(m.name for m in later[[m.name for m in later].index(NEW) :])
        titles = {t.thread: t.title for t in await storage.log.find_threads(name="Deploy plan for tomorrow…")}
        assert titles == {"t2": "Deploy plan for tomorrow…"}
        assert (await storage.log.thread(thread_id=1)).title is None  # type: ignore[union-attr]
        assert (await storage.log.thread(thread_id=3)).title == "Incident room"  # type: ignore[union-attr]
        contents = [[m.content for m in await storage.log.all_messages(thread_id=tid)] for tid in (1, 2, 3, 4)]
        assert contents == [[""], [messages[1][3]], [messages[2][3]], [messages[3][3]]]
        assert [h.message_id for h in await storage.search.search(thread_id=4, query="searchable", limit=5)] == [4]
        assert (await storage.sessions.latest_summary(thread_id=2)) is not None
        assert [r["message_id"] for r in await rows(storage, "SELECT message_id FROM delivered_events")] == [2]

        # The title made from m2 now follows it; the ids the journal named are never handed out.
        await storage.erasures.edit_message(thread_id=2, platform_message_id="m2", content="x", edited_utc=NOW)
        assert (await storage.log.thread(thread_id=2)).title is None  # type: ignore[union-attr]
        assert await new_thread(storage, "t10") > 9
        assert await say(storage, 4, "m10", "after the upgrade") > 9
        # Foreign keys still cascade into the rebuilt tables.
        assert await storage.erasures.forget_thread(thread_id=2, now=NOW) == 1
        assert await storage.sessions.latest_summary(thread_id=2) is None
        assert await rows(storage, "SELECT message_id FROM delivered_events") == []


async def test_the_sqlite_upgrade_leaves_a_consistent_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    async with _previous_release(url) as old:
        await old.insert("threads", id=1, platform="p", workspace="w", channel="c", thread="t", created_utc="x")
        await old.insert(
            "messages", id=1, thread_id=1, platform_message_id="m", author_id="u", author_name="U", role="user",
            content="c", sent_utc="x", logged_utc="x",
        )  # fmt: skip
    async with open_storage(url) as storage:
        db: Any = storage.database
        assert (await db.fetchone("PRAGMA integrity_check"))[0] == "ok"
        assert await db.fetchall("PRAGMA foreign_key_check") == []
        assert (await db.fetchone("PRAGMA foreign_keys"))[0] == 1
        for table in ("threads", "messages", "sessions"):
            sql = await db.fetchone("SELECT sql FROM sqlite_master WHERE name = ?", (table,))
            assert "id INTEGER PRIMARY KEY AUTOINCREMENT" in sql["sql"]
