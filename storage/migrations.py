"""Schema migrations: an ordered list of functions, each applied once, in its own transaction.

Each migration is recorded by its function name in ``_migrations`` when applied. They run at start-up,
before any adapter connects. Never edit a migration that has shipped: append a new one.

Deduplication lives in the schema, not in Python: ``UNIQUE(thread_id, platform_message_id)`` makes logging a
redelivered message a no-op, the partial unique index on open cards makes a second card for the same orphaning
impossible, and the delivered-events primary key records each platform delivery once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiosqlite

from storage.db import Database

Migration = Callable[[aiosqlite.Connection], Awaitable[None]]


async def m001_initial(connection: aiosqlite.Connection) -> None:
    await connection.execute(
        """
        CREATE TABLE threads (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            workspace TEXT NOT NULL,
            channel TEXT NOT NULL,
            thread TEXT NOT NULL,
            title TEXT,
            created_utc TEXT NOT NULL,
            last_message_utc TEXT,
            UNIQUE (platform, workspace, channel, thread)
        )
        """
    )
    await connection.execute(
        """
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            thread_id INTEGER NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
            platform_message_id TEXT NOT NULL,
            author_id TEXT NOT NULL,
            author_name TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            content TEXT NOT NULL,
            attachments_json TEXT NOT NULL DEFAULT '[]',
            reply_state TEXT CHECK (reply_state IN ('waiting', 'answered')),
            sent_utc TEXT NOT NULL,
            logged_utc TEXT NOT NULL,
            edited_utc TEXT,
            deleted_utc TEXT,
            UNIQUE (thread_id, platform_message_id)
        )
        """
    )
    await connection.execute("CREATE INDEX messages_waiting ON messages (thread_id) WHERE reply_state = 'waiting'")
    await connection.execute(
        """
        CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            thread_id INTEGER NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
            origin TEXT NOT NULL CHECK (origin IN ('fresh', 'catch_up')),
            model TEXT NOT NULL,
            started_utc TEXT NOT NULL,
            summary TEXT,
            summary_through_message_id INTEGER REFERENCES messages (id) ON DELETE SET NULL
        )
        """
    )
    await connection.execute("CREATE INDEX sessions_by_thread ON sessions (thread_id, id)")
    await connection.execute(
        """
        CREATE TABLE cards (
            id INTEGER PRIMARY KEY,
            thread_id INTEGER NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
            card_message_id TEXT,
            state TEXT NOT NULL CHECK (state IN ('pending', 'catching_up', 'caught_up', 'fresh')),
            created_utc TEXT NOT NULL,
            resolved_by_id TEXT,
            resolved_by_name TEXT,
            resolved_utc TEXT
        )
        """
    )
    await connection.execute(
        "CREATE UNIQUE INDEX cards_one_open_per_thread ON cards (thread_id) WHERE state IN ('pending', 'catching_up')"
    )
    await connection.execute(
        """
        CREATE TABLE delivered_events (
            platform TEXT NOT NULL,
            event_key TEXT NOT NULL,
            message_id INTEGER REFERENCES messages (id) ON DELETE CASCADE,
            received_utc TEXT NOT NULL,
            handled_utc TEXT,
            PRIMARY KEY (platform, event_key)
        )
        """
    )
    await connection.execute("CREATE INDEX delivered_events_by_message ON delivered_events (message_id)")


async def m002_cards_autoincrement(connection: aiosqlite.Connection) -> None:
    """Card ids are never reused: ``AUTOINCREMENT`` instead of a plain INTEGER PRIMARY KEY.

    A card whose post timed out is discarded, but it may have reached the platform with its buttons; with a
    plain rowid its id went to the next card, in another thread, and a click on the old buttons resolved
    that one. SQLite cannot add AUTOINCREMENT to a table, so ``cards`` is rebuilt (rows and the partial unique
    index kept); nothing references ``cards``, so the rebuild touches no other table.
    """
    await connection.execute(
        """
        CREATE TABLE cards_autoincrement (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            thread_id INTEGER NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
            card_message_id TEXT,
            state TEXT NOT NULL CHECK (state IN ('pending', 'catching_up', 'caught_up', 'fresh')),
            created_utc TEXT NOT NULL,
            resolved_by_id TEXT,
            resolved_by_name TEXT,
            resolved_utc TEXT
        )
        """
    )
    columns = "id, thread_id, card_message_id, state, created_utc, resolved_by_id, resolved_by_name, resolved_utc"
    await connection.execute(f"INSERT INTO cards_autoincrement ({columns}) SELECT {columns} FROM cards")
    await connection.execute("DROP TABLE cards")
    await connection.execute("ALTER TABLE cards_autoincrement RENAME TO cards")
    await connection.execute(
        "CREATE UNIQUE INDEX cards_one_open_per_thread ON cards (thread_id) WHERE state IN ('pending', 'catching_up')"
    )


async def m003_erasures(connection: aiosqlite.Connection) -> None:
    """The journal of forgotten messages and threads that running routers follow (see storage/erasure.py).

    No foreign keys: a row must outlive the thread it names, so a router learns that the thread was forgotten.
    """
    await connection.execute(
        """
        CREATE TABLE erasures (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            thread_id INTEGER NOT NULL,
            message_id INTEGER,
            kind TEXT NOT NULL CHECK (kind IN ('deleted', 'edited', 'thread')),
            created_utc TEXT NOT NULL
        )
        """
    )
    await connection.execute("CREATE INDEX erasures_by_thread ON erasures (thread_id, id)")


async def m004_usage(connection: aiosqlite.Connection) -> None:
    """Tokens and cost of every model call behind an answer or a summary.

    A forgotten thread keeps its usage rows, unlinked (``thread_id`` NULL): they hold no message text, and
    the spend they record stays true. ``cost_usd`` is NULL when litellm's cost map does not know the model;
    ``tokens_counted`` is 1 when the provider reported no usage and the tokens were counted locally.
    """
    await connection.execute(
        """
        CREATE TABLE usage (
            id INTEGER PRIMARY KEY,
            thread_id INTEGER REFERENCES threads (id) ON DELETE SET NULL,
            user_id TEXT,
            purpose TEXT NOT NULL CHECK (purpose IN ('answer', 'summary')),
            model TEXT NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            tokens_counted INTEGER NOT NULL DEFAULT 0 CHECK (tokens_counted IN (0, 1)),
            cost_usd REAL,
            created_utc TEXT NOT NULL
        )
        """
    )
    await connection.execute("CREATE INDEX usage_by_user ON usage (user_id, created_utc)")
    await connection.execute("CREATE INDEX usage_by_thread ON usage (thread_id)")


async def m005_search_and_trail(connection: aiosqlite.Connection) -> None:
    """Full-text search of the log (``search_thread``), the tool trail, and approval cards for tool calls.

    The FTS5 index is external-content over ``messages.content`` and kept in step by triggers, so an edit or a
    deletion changes what can be found in the same statement that changes the row.
    """
    await connection.execute(
        "CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', content_rowid='id', "
        "tokenize='unicode61 remove_diacritics 2')"
    )
    await connection.execute(
        "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN "
        "INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content); END"
    )
    await connection.execute(
        "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN "
        "INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content); END"
    )
    await connection.execute(
        "CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN "
        "INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content); "
        "INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content); END"
    )
    await connection.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
    await connection.execute(
        """
        CREATE TABLE tool_calls (
            id INTEGER PRIMARY KEY,
            thread_id INTEGER NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
            after_message_id INTEGER NOT NULL,
            call_id TEXT NOT NULL,
            tool TEXT NOT NULL,
            arguments_json TEXT NOT NULL,
            result_excerpt TEXT NOT NULL,
            is_error INTEGER NOT NULL,
            duration_ms INTEGER NOT NULL,
            approval TEXT NOT NULL CHECK (approval IN ('not_needed', 'approved', 'denied', 'timed_out')),
            decided_by TEXT,
            cites_json TEXT NOT NULL DEFAULT '[]',
            created_utc TEXT NOT NULL
        )
        """
    )
    await connection.execute("CREATE INDEX tool_calls_by_thread ON tool_calls (thread_id, after_message_id, id)")
    await connection.execute(
        """
        CREATE TABLE approvals (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            thread_id INTEGER NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
            tool TEXT NOT NULL,
            arguments_preview TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'timed_out', 'expired')),
            card_message_id TEXT,
            decided_by_id TEXT,
            decided_by_name TEXT,
            created_utc TEXT NOT NULL,
            decided_utc TEXT
        )
        """
    )


async def m006_feedback(connection: aiosqlite.Connection) -> None:
    """👍 / 👎 on answers: one row per answer and person (a second click replaces the first)."""
    await connection.execute(
        """
        CREATE TABLE feedback (
            id INTEGER PRIMARY KEY,
            message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
            user_id TEXT NOT NULL,
            user_name TEXT NOT NULL,
            rating TEXT NOT NULL CHECK (rating IN ('positive', 'negative')),
            given_utc TEXT NOT NULL,
            UNIQUE (message_id, user_id)
        )
        """
    )


async def m007_thread_settings(connection: aiosqlite.Connection) -> None:
    """Per-thread choices made in the thread (the model), and answers a retry replaced.

    A replaced answer keeps its row (the log is the record of what was said) with ``replaced_utc`` set, so the
    catch-up transcript and the export never present it as the thread's current answer.
    """
    await connection.execute(
        """
        CREATE TABLE thread_settings (
            thread_id INTEGER PRIMARY KEY REFERENCES threads (id) ON DELETE CASCADE,
            model TEXT,
            changed_by_id TEXT,
            changed_utc TEXT NOT NULL
        )
        """
    )
    await connection.execute("ALTER TABLE messages ADD COLUMN replaced_utc TEXT")


# The first user message of each titled thread, when the title could have been made from it: its text starts
# with the title (Discord cuts a long first line with "…"), or it was deleted or edited since (its old text can
# no longer be compared, and a title made from it must not outlive it).
TITLE_SOURCE_BACKFILL = (
    "UPDATE threads SET title_message_id = (SELECT m.platform_message_id FROM messages m "
    "WHERE m.id = (SELECT MIN(f.id) FROM messages f WHERE f.thread_id = threads.id AND f.role = 'user') "
    "AND (m.deleted_utc IS NOT NULL OR m.edited_utc IS NOT NULL "
    "OR substr(m.content, 1, length(rtrim(threads.title, '…'))) = rtrim(threads.title, '…'))) "
    "WHERE title IS NOT NULL"
)
# A title whose message was deleted or edited before this upgrade goes now, as it would have then.
TITLE_OF_CHANGED_MESSAGES = (
    "UPDATE threads SET title = NULL, title_message_id = NULL WHERE title_message_id IN (SELECT m.platform_message_id "
    "FROM messages m WHERE m.thread_id = threads.id AND (m.deleted_utc IS NOT NULL OR m.edited_utc IS NOT NULL))"
)


async def m008_ids_never_reused_and_title_source(connection: aiosqlite.Connection) -> None:
    """Thread, message and session ids are never reused, and a thread's title remembers the message it came from.

    The erasure journal, the buttons, the trail and live sessions name threads, messages and sessions by id. With
    a plain INTEGER PRIMARY KEY, forgetting the newest thread handed its id to the next new thread, and the
    journal row of the old one then dropped the new one's state. SQLite cannot add AUTOINCREMENT to a table, so
    ``threads``, ``messages`` and ``sessions`` are rebuilt with every row and id (``migrate`` turns foreign keys
    off meanwhile, so dropping the old tables cascades nowhere), and the counters start above every id the
    journal names: ids forgotten before this upgrade are not handed out again either.

    ``title_message_id`` is the platform id of the message the title was made from (NULL when the platform named
    the thread): deleting, editing or forgetting that message blanks the title (storage/erasure.py).
    """
    await connection.execute(
        """
        CREATE TABLE threads_autoincrement (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            platform TEXT NOT NULL,
            workspace TEXT NOT NULL,
            channel TEXT NOT NULL,
            thread TEXT NOT NULL,
            title TEXT,
            created_utc TEXT NOT NULL,
            last_message_utc TEXT,
            title_message_id TEXT,
            UNIQUE (platform, workspace, channel, thread)
        )
        """
    )
    columns = "id, platform, workspace, channel, thread, title, created_utc, last_message_utc"
    await connection.execute(f"INSERT INTO threads_autoincrement ({columns}) SELECT {columns} FROM threads")
    await connection.execute("DROP TABLE threads")
    await connection.execute("ALTER TABLE threads_autoincrement RENAME TO threads")
    await connection.execute(
        """
        CREATE TABLE messages_autoincrement (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            thread_id INTEGER NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
            platform_message_id TEXT NOT NULL,
            author_id TEXT NOT NULL,
            author_name TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            content TEXT NOT NULL,
            attachments_json TEXT NOT NULL DEFAULT '[]',
            reply_state TEXT CHECK (reply_state IN ('waiting', 'answered')),
            sent_utc TEXT NOT NULL,
            logged_utc TEXT NOT NULL,
            edited_utc TEXT,
            deleted_utc TEXT,
            replaced_utc TEXT,
            UNIQUE (thread_id, platform_message_id)
        )
        """
    )
    columns = (
        "id, thread_id, platform_message_id, author_id, author_name, role, content, attachments_json, reply_state, "
        "sent_utc, logged_utc, edited_utc, deleted_utc, replaced_utc"
    )
    await connection.execute(f"INSERT INTO messages_autoincrement ({columns}) SELECT {columns} FROM messages")
    await connection.execute("DROP TABLE messages")  # its triggers and index go with it
    await connection.execute("ALTER TABLE messages_autoincrement RENAME TO messages")
    await connection.execute("CREATE INDEX messages_waiting ON messages (thread_id) WHERE reply_state = 'waiting'")
    # A live session writes its rebuilt summary back by session id (storage/sessions.py, replace_summary).
    await connection.execute(
        """
        CREATE TABLE sessions_autoincrement (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            thread_id INTEGER NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
            origin TEXT NOT NULL CHECK (origin IN ('fresh', 'catch_up')),
            model TEXT NOT NULL,
            started_utc TEXT NOT NULL,
            summary TEXT,
            summary_through_message_id INTEGER REFERENCES messages (id) ON DELETE SET NULL
        )
        """
    )
    columns = "id, thread_id, origin, model, started_utc, summary, summary_through_message_id"
    await connection.execute(f"INSERT INTO sessions_autoincrement ({columns}) SELECT {columns} FROM sessions")
    await connection.execute("DROP TABLE sessions")
    await connection.execute("ALTER TABLE sessions_autoincrement RENAME TO sessions")
    await connection.execute("CREATE INDEX sessions_by_thread ON sessions (thread_id, id)")
    # The search index keeps its entries (every row kept its id); the triggers went with the old table.
    await connection.execute(
        "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN "
        "INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content); END"
    )
    await connection.execute(
        "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN "
        "INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content); END"
    )
    await connection.execute(
        "CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN "
        "INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content); "
        "INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content); END"
    )
    for table, journaled in (("threads", "thread_id"), ("messages", "message_id")):
        await connection.execute(
            "INSERT INTO sqlite_sequence (name, seq) SELECT ?, 0 WHERE NOT EXISTS "
            "(SELECT 1 FROM sqlite_sequence WHERE name = ?)",
            (table, table),
        )
        await connection.execute(
            f"UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT COALESCE(MAX({journaled}), 0) FROM erasures)) "
            "WHERE name = ?",
            (table,),
        )
    await connection.execute(TITLE_SOURCE_BACKFILL)
    await connection.execute(TITLE_OF_CHANGED_MESSAGES)


async def m009_turn_journal(connection: aiosqlite.Connection) -> None:
    """The turn journal: a tool turn's steps and each call's state, so an interrupted turn can resume.

    The trail becomes the journal: a call's ``tool_calls`` row is written when the model asks for it (``state``
    'requested') and moves through its states to 'done' (or 'failed', 'denied', 'expired'); rows written before
    this upgrade were finished calls, hence the default. ``turn_steps`` holds each model step that asked for tools
    (its text so far); ``closed_utc`` is set when the turn's answer is logged or the turn is dropped.
    """
    for statement in TURN_JOURNAL_SCHEMA:
        await connection.execute(statement)


# The same statements run on Postgres (storage/postgres/migrations.py), but for the id column (BIGINT is INTEGER
# to SQLite).
TURN_JOURNAL_SCHEMA = (
    """
    CREATE TABLE turn_steps (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        thread_id BIGINT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
        after_message_id BIGINT NOT NULL,
        text TEXT NOT NULL,
        created_utc TEXT NOT NULL,
        closed_utc TEXT
    )
    """,
    "CREATE INDEX turn_steps_open ON turn_steps (thread_id, closed_utc, id)",
    "ALTER TABLE tool_calls ADD COLUMN step_id BIGINT",
    "ALTER TABLE tool_calls ADD COLUMN state TEXT NOT NULL DEFAULT 'done'",
    "ALTER TABLE tool_calls ADD COLUMN approval_id BIGINT",
    "CREATE UNIQUE INDEX tool_calls_by_step ON tool_calls (step_id, call_id)",
)


MIGRATIONS: list[Migration] = [
    m001_initial,
    m002_cards_autoincrement,
    m003_erasures,
    m004_usage,
    m005_search_and_trail,
    m006_feedback,
    m007_thread_settings,
    m008_ids_never_reused_and_title_source,
    m009_turn_journal,
]


async def applied_migrations(db: Database) -> list[str]:
    rows = await db.fetchall("SELECT name FROM _migrations ORDER BY applied_utc, name")
    return [row["name"] for row in rows]


async def migrate(db: Database, migrations: list[Migration] | None = None) -> list[str]:
    """Apply every migration not yet recorded; return the names applied now."""
    await db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_utc TEXT NOT NULL)")
    done = set(await applied_migrations(db))
    applied = []
    # A rebuilt table (m002, m008) is dropped, and with foreign keys on, DROP TABLE first deletes every row,
    # cascading into the tables that reference it. SQLite's own procedure for such changes: keys off around the
    # migrations (the pragma cannot change inside a transaction), and a foreign_key_check before each commit.
    await db.execute("PRAGMA foreign_keys=OFF")
    try:
        for migration in migrations if migrations is not None else MIGRATIONS:
            name = migration.__name__
            if name in done:
                continue
            async with db.transaction() as connection:
                await migration(connection)
                cursor = await connection.execute("PRAGMA foreign_key_check")
                broken = list(await cursor.fetchall())
                await cursor.close()
                if broken:
                    raise RuntimeError(f"migration {name} would leave rows pointing nowhere: {tuple(broken[0])}")
                await connection.execute(
                    "INSERT INTO _migrations (name, applied_utc) VALUES (?, ?)",
                    (name, datetime.now(UTC).isoformat()),
                )
            applied.append(name)
    finally:
        await db.execute("PRAGMA foreign_keys=ON")
    return applied
