"""The SQLite backend itself: the exact schema, file permissions, URLs, upgrades (the contract: storage_contract/)."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from storage.backends import UnsupportedDatabaseURL, database_path_from_url
from storage.log import ThreadLog
from storage.migrations import MIGRATIONS, applied_migrations, migrate, migrations_for
from storage.sessions import CardRecord, CardStore
from storage.sqlite.db import open_database

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

EXPECTED_COLUMNS = {
    "_migrations": ["name", "applied_utc"],
    "threads": [
        "id",
        "platform",
        "workspace",
        "channel",
        "thread",
        "title",
        "created_utc",
        "last_message_utc",
        "title_message_id",
    ],
    "messages": [
        "id",
        "thread_id",
        "platform_message_id",
        "author_id",
        "author_name",
        "role",
        "content",
        "attachments_json",
        "reply_state",
        "sent_utc",
        "logged_utc",
        "edited_utc",
        "deleted_utc",
        "replaced_utc",
        "transcript",
    ],
    "sessions": ["id", "thread_id", "origin", "model", "started_utc", "summary", "summary_through_message_id"],
    "cards": [
        "id",
        "thread_id",
        "card_message_id",
        "state",
        "created_utc",
        "resolved_by_id",
        "resolved_by_name",
        "resolved_utc",
    ],
    "delivered_events": ["platform", "event_key", "message_id", "received_utc", "handled_utc"],
    "erasures": ["id", "thread_id", "message_id", "kind", "created_utc", "title_forgotten", "title_renamed_by"],
    "sqlite_sequence": ["name", "seq"],  # SQLite's own table behind AUTOINCREMENT
    "messages_fts": ["content", "transcript"],
    "messages_fts_config": ["k", "v"],
    "messages_fts_data": ["id", "block"],
    "messages_fts_docsize": ["id", "sz"],
    "messages_fts_idx": ["segid", "term", "pgno"],
    "tool_calls": [
        "id",
        "thread_id",
        "after_message_id",
        "call_id",
        "tool",
        "arguments_json",
        "result_excerpt",
        "is_error",
        "duration_ms",
        "approval",
        "decided_by",
        "cites_json",
        "created_utc",
        "step_id",
        "state",
        "approval_id",
    ],
    "turn_steps": ["id", "thread_id", "after_message_id", "text", "created_utc", "closed_utc"],
    "approvals": [
        "id",
        "thread_id",
        "tool",
        "arguments_preview",
        "state",
        "card_message_id",
        "decided_by_id",
        "decided_by_name",
        "created_utc",
        "decided_utc",
        "asked_epoch_s",
    ],
    "feedback": ["id", "message_id", "user_id", "user_name", "rating", "given_utc"],
    "thread_settings": ["thread_id", "model", "changed_by_id", "changed_utc", "reply_mode"],
    "slack_installations": [
        "id",
        "enterprise_id",
        "team_id",
        "team_name",
        "bot_user_id",
        "bot_scopes",
        "details_json",
        "tokens_ciphertext",
        "installed_utc",
        "updated_utc",
        "refresh_claimed_until_s",
    ],
    "oauth_states": ["state", "expires_utc"],
    "slack_shared_channels": ["channel_id", "enterprise_id", "team_id", "chosen_utc"],
    "thread_joins": ["thread_id", "before_message_id", "replied_to", "reserved_ids_json", "started_utc"],
    "usage": [
        "id",
        "thread_id",
        "user_id",
        "purpose",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "tokens_counted",
        "cost_usd",
        "created_utc",
    ],
}
EXPECTED_TRIGGERS = {"messages_fts_insert", "messages_fts_update", "messages_fts_delete"}
EXPECTED_INDEXES = {
    "messages_waiting": "messages",
    "messages_by_platform_id": "messages",
    "sessions_by_thread": "sessions",
    "cards_one_open_per_thread": "cards",
    "delivered_events_by_message": "delivered_events",
    "erasures_by_thread": "erasures",
    "tool_calls_by_thread": "tool_calls",
    "tool_calls_by_step": "tool_calls",
    "turn_steps_open": "turn_steps",
    "usage_by_user": "usage",
    "usage_by_thread": "usage",
    "slack_shared_channels_by_keeper": "slack_shared_channels",
}


async def test_blank_database_gets_exactly_the_expected_schema(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "new" / "bot.db")
    try:
        assert await migrate(db) == [m.name for m in migrations_for("sqlite")]
        assert await migrate(db) == []
        assert await applied_migrations(db) == [
            "m001_initial",
            "m002_cards_autoincrement",
            "m003_erasures",
            "m004_usage",
            "m005_search_and_trail",
            "m006_feedback",
            "m007_thread_settings",
            "m008_ids_never_reused_and_title_source",
            "m009_turn_journal",
            "m010_slack_installations",
            "m011_thread_reply_mode",
            "m012_voice_transcripts",
            "m013_approval_asked_by_database_clock",
            "m016_messages_by_platform_id",
            "m015_slack_shared_channels_and_refresh_claims",
            "m017_thread_joins",
            "m018_erasures_title_forgotten",
        ]
        tables = await db.fetchall("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        assert {r["name"] for r in tables} == set(EXPECTED_COLUMNS)
        for table, columns in EXPECTED_COLUMNS.items():
            info = await db.fetchall(f"PRAGMA table_info({table})")
            assert [r["name"] for r in info] == columns, table
        indexes = await db.fetchall("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        assert {r["name"]: r["tbl_name"] for r in indexes} == EXPECTED_INDEXES
        triggers = await db.fetchall("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        assert {r["name"] for r in triggers} == EXPECTED_TRIGGERS
        for table in ("cards", "threads", "messages", "sessions"):  # ids the journal and buttons name are never reused
            table_sql = await db.fetchone("SELECT sql FROM sqlite_master WHERE name = ?", (table,))
            assert table_sql is not None and "id INTEGER PRIMARY KEY AUTOINCREMENT" in table_sql["sql"], table
        names = ("journal_mode", "foreign_keys", "busy_timeout", "synchronous", "secure_delete")
        pragmas = [(await db.fetchone(f"PRAGMA {p}")) for p in names]
        assert [p[0] for p in pragmas if p is not None] == ["wal", 1, 5000, 2, 1]  # synchronous 2 = FULL
    finally:
        await db.close()


async def test_database_file_and_folder_are_private(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "bot.db"
    db = await open_database(path)
    await migrate(db)
    await db.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("url", "expected"),
    [("sqlite:///data/x.db", Path("data/x.db")), ("sqlite:////var/lib/x.db", Path("/var/lib/x.db"))],
)
def test_sqlite_urls_name_relative_and_absolute_files(url: str, expected: Path) -> None:
    assert database_path_from_url(url) == expected


@pytest.mark.parametrize("url", ["mysql://localhost/tk", "data/x.db", "sqlite:///", "sqlite:///dir/"])
def test_other_database_urls_are_refused_clearly(url: str) -> None:
    with pytest.raises(UnsupportedDatabaseURL, match="sqlite:///"):
        database_path_from_url(url)


async def _cards_made_by_m001(path: Path) -> tuple[CardRecord, CardRecord]:
    """A database at m001 with a resolved card in one thread and a posted, pending one in another."""
    db = await open_database(path)
    try:
        assert await migrate(db, MIGRATIONS[:1]) == ["m001_initial"]
        cards = CardStore(db)
        made = [
            await db.fetchone(  # the m001 columns: today's ThreadLog writes a column m008 adds
                "INSERT INTO threads (platform, workspace, channel, thread, created_utc) VALUES ('p', 'w', 'c', ?, ?) "
                "RETURNING id",
                (name, NOW.isoformat()),
            )
            for name in ("t1", "t2")
        ]
        assert made[0] is not None and made[1] is not None
        t1, t2 = int(made[0]["id"]), int(made[1]["id"])
        done, _ = await cards.open_card(thread_id=t1, now=NOW)
        assert await cards.claim(card_id=done.id, state="fresh", by_id="u", by_name="U", now=NOW)
        await cards.finish(card_id=done.id, state="fresh", now=NOW)
        waiting, _ = await cards.open_card(thread_id=t2, now=NOW)
        await cards.set_message_id(card_id=waiting.id, card_message_id="msg-2")
        return done, waiting
    finally:
        await db.close()


async def test_a_database_made_by_m001_upgrades_keeping_its_cards_and_their_index(tmp_path: Path) -> None:
    done, waiting = await _cards_made_by_m001(tmp_path / "old.db")
    db = await open_database(tmp_path / "old.db")
    try:
        assert await migrate(db) == [
            "m002_cards_autoincrement",
            "m003_erasures",
            "m004_usage",
            "m005_search_and_trail",
            "m006_feedback",
            "m007_thread_settings",
            "m008_ids_never_reused_and_title_source",
            "m009_turn_journal",
            "m010_slack_installations",
            "m011_thread_reply_mode",
            "m012_voice_transcripts",
            "m013_approval_asked_by_database_clock",
            "m016_messages_by_platform_id",
            "m015_slack_shared_channels_and_refresh_claims",
            "m017_thread_joins",
            "m018_erasures_title_forgotten",
        ]
        cards = CardStore(db)
        assert await cards.get(card_id=done.id) == CardRecord(done.id, done.thread_id, None, "fresh", "U")
        expected = CardRecord(waiting.id, waiting.thread_id, "msg-2", "pending", None)
        assert await cards.get(card_id=waiting.id) == expected
        again, created = await cards.open_card(thread_id=waiting.thread_id, now=NOW)  # the partial unique index holds
        assert (again.id, created) == (waiting.id, False)
        await cards.discard(card_id=waiting.id)
        newest, _ = await cards.open_card(thread_id=done.thread_id, now=NOW)
        assert newest.id > waiting.id
        check = await db.fetchone("PRAGMA integrity_check")
        assert check is not None and check[0] == "ok"
    finally:
        await db.close()


class _RecordingReads:
    """A database whose reads are written down (statement and parameters), everything else handed through."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self.reads: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    async def fetchall(self, sql: str, params: Any = ()) -> Any:
        self.reads.append((sql, params))
        return await self._db.fetchall(sql, params)


async def test_the_threads_holding_a_message_are_found_from_the_message_not_by_scanning_the_channel(
    tmp_path: Path,
) -> None:
    """Every deletion in a channel asks this; with the channel's threads scanned first, a channel of 20,000 threads
    took 7 ms a lookup here, from the message's index 6 µs (SQLite orders loops as written in a CROSS JOIN)."""
    db = await open_database(tmp_path / "bot.db")
    try:
        await migrate(db)
        reads = _RecordingReads(db)
        await ThreadLog(reads).threads_holding(platform="p", workspace="w", channel="c", platform_message_id="m1")
        [(sql, params)] = reads.reads
        plan = [str(row[3]) for row in await db.fetchall(f"EXPLAIN QUERY PLAN {sql}", params)]
        assert plan[0].startswith("SEARCH m USING INDEX messages_by_platform_id"), plan
        assert plan[1].startswith("SEARCH t USING INTEGER PRIMARY KEY"), plan
    finally:
        await db.close()
