"""The first migration steps, m001 to m009, and the table texts they share: shipped, so never edited again.

Moved out of ``storage/revisions.py`` to keep that module small: its list starts with these, in this order
(``M001_TO_M009``). ``pg_leases`` and every later step stay there, beside the end of the list where new steps
are appended; the rules for a step are in its docstring.
"""

from __future__ import annotations

from storage.schema.step import Migration

_THREADS = """
    CREATE TABLE threads (
        {id},
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
_MESSAGES = """
    CREATE TABLE messages (
        {id},
        thread_id {bigint} NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
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
_MESSAGES_WAITING = "CREATE INDEX messages_waiting ON messages (thread_id) WHERE reply_state = 'waiting'"
_SESSIONS = """
    CREATE TABLE sessions (
        {id},
        thread_id {bigint} NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
        origin TEXT NOT NULL CHECK (origin IN ('fresh', 'catch_up')),
        model TEXT NOT NULL,
        started_utc TEXT NOT NULL,
        summary TEXT,
        summary_through_message_id {bigint} REFERENCES messages (id) ON DELETE SET NULL
    )
    """
_SESSIONS_BY_THREAD = "CREATE INDEX sessions_by_thread ON sessions (thread_id, id)"
_CARDS = """
    CREATE TABLE cards (
        {id},
        thread_id {bigint} NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
        card_message_id TEXT,
        state TEXT NOT NULL CHECK (state IN ('pending', 'catching_up', 'caught_up', 'fresh')),
        created_utc TEXT NOT NULL,
        resolved_by_id TEXT,
        resolved_by_name TEXT,
        resolved_utc TEXT
    )
    """
_CARDS_INDEX = (
    "CREATE UNIQUE INDEX cards_one_open_per_thread ON cards (thread_id) WHERE state IN ('pending', 'catching_up')"
)
# SQLite's full-text index follows the rows through these (m005; m008 makes them again on the rebuilt table).
_FTS_TRIGGERS = (
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN "
    "INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content); END",
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN "
    "INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content); END",
    "CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN "
    "INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content); "
    "INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content); END",
)


def _rebuild(table: str, create: str, columns: str, *after: str) -> tuple[str, ...]:
    """SQLite's way to change a table it cannot ALTER: a new one, every row copied with its id, then renamed."""
    return (
        create.replace(f"CREATE TABLE {table} (", f"CREATE TABLE {table}_autoincrement ("),
        f"INSERT INTO {table}_autoincrement ({columns}) SELECT {columns} FROM {table}",
        f"DROP TABLE {table}",
        f"ALTER TABLE {table}_autoincrement RENAME TO {table}",
        *after,
    )


_CARD_COLUMNS = "id, thread_id, card_message_id, state, created_utc, resolved_by_id, resolved_by_name, resolved_utc"

M001_TO_M009: tuple[Migration, ...] = (
    Migration(
        "m001_initial",
        (
            _THREADS,
            _MESSAGES,
            _MESSAGES_WAITING,
            _SESSIONS,
            _SESSIONS_BY_THREAD,
            _CARDS,
            _CARDS_INDEX,
            """
            CREATE TABLE delivered_events (
                platform TEXT NOT NULL,
                event_key TEXT NOT NULL,
                message_id {bigint} REFERENCES messages (id) ON DELETE CASCADE,
                received_utc TEXT NOT NULL,
                handled_utc TEXT,
                PRIMARY KEY (platform, event_key)
            )
            """,
            "CREATE INDEX delivered_events_by_message ON delivered_events (message_id)",
        ),
    ),
    # Card ids are never reused: a card whose post timed out may have reached the platform with its buttons, and
    # with a plain rowid its id went to the next card. SQLite cannot add AUTOINCREMENT to a table: it is rebuilt.
    Migration(
        "m002_cards_autoincrement",
        sqlite=_rebuild("cards", _CARDS.replace("{id}", "{id_never_reused}"), _CARD_COLUMNS, _CARDS_INDEX),
        only="sqlite",
    ),
    # The journal of forgotten messages and threads that running routers follow (storage/erasure.py). No foreign
    # keys: a row must outlive the thread it names, so a router learns that the thread was forgotten.
    Migration(
        "m003_erasures",
        (
            """
            CREATE TABLE erasures (
                {id_never_reused},
                thread_id {bigint} NOT NULL,
                message_id {bigint},
                kind TEXT NOT NULL CHECK (kind IN ('deleted', 'edited', 'thread')),
                created_utc TEXT NOT NULL
            )
            """,
            "CREATE INDEX erasures_by_thread ON erasures (thread_id, id)",
        ),
    ),
    # Tokens and cost of every model call. A forgotten thread keeps its usage rows, unlinked (they hold no text);
    # ``cost_usd`` is NULL for a model litellm cannot price; ``tokens_counted`` 1 when they were counted locally.
    Migration(
        "m004_usage",
        (
            """
            CREATE TABLE usage (
                {id},
                thread_id {bigint} REFERENCES threads (id) ON DELETE SET NULL,
                user_id TEXT,
                purpose TEXT NOT NULL CHECK (purpose IN ('answer', 'summary')),
                model TEXT NOT NULL,
                prompt_tokens {bigint} NOT NULL,
                completion_tokens {bigint} NOT NULL,
                tokens_counted INTEGER NOT NULL DEFAULT 0 CHECK (tokens_counted IN (0, 1)),
                cost_usd {real},
                created_utc TEXT NOT NULL
            )
            """,
            "CREATE INDEX usage_by_user ON usage (user_id, created_utc)",
            "CREATE INDEX usage_by_thread ON usage (thread_id)",
        ),
    ),
    # The tool trail and approval cards for tool calls; on SQLite the full-text index of the log
    # (``search_thread``): external-content over ``messages.content``, kept in step by triggers, so an edit or a
    # deletion changes what can be found in the same statement that changes the row.
    Migration(
        "m005_search_and_trail",
        (
            """
            CREATE TABLE tool_calls (
                {id},
                thread_id {bigint} NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
                after_message_id {bigint} NOT NULL,
                call_id TEXT NOT NULL,
                tool TEXT NOT NULL,
                arguments_json TEXT NOT NULL,
                result_excerpt TEXT NOT NULL,
                is_error INTEGER NOT NULL,
                duration_ms {bigint} NOT NULL,
                approval TEXT NOT NULL CHECK (approval IN ('not_needed', 'approved', 'denied', 'timed_out')),
                decided_by TEXT,
                cites_json TEXT NOT NULL DEFAULT '[]',
                created_utc TEXT NOT NULL
            )
            """,
            "CREATE INDEX tool_calls_by_thread ON tool_calls (thread_id, after_message_id, id)",
            """
            CREATE TABLE approvals (
                {id_never_reused},
                thread_id {bigint} NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
                tool TEXT NOT NULL,
                arguments_preview TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'timed_out', 'expired')),
                card_message_id TEXT,
                decided_by_id TEXT,
                decided_by_name TEXT,
                created_utc TEXT NOT NULL,
                decided_utc TEXT
            )
            """,
        ),
        sqlite=(
            "CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', content_rowid='id', "
            "tokenize='unicode61 remove_diacritics 2')",
            *_FTS_TRIGGERS,
            "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')",
        ),
    ),
    # 👍 / 👎 on answers: one row per answer and person (a second click replaces the first).
    Migration(
        "m006_feedback",
        (
            """
            CREATE TABLE feedback (
                {id},
                message_id {bigint} NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
                user_id TEXT NOT NULL,
                user_name TEXT NOT NULL,
                rating TEXT NOT NULL CHECK (rating IN ('positive', 'negative')),
                given_utc TEXT NOT NULL,
                UNIQUE (message_id, user_id)
            )
            """,
        ),
    ),
    # Per-thread choices (the model), and answers a retry replaced: kept in the log, never presented as current.
    Migration(
        "m007_thread_settings",
        (
            """
            CREATE TABLE thread_settings (
                thread_id {bigint} PRIMARY KEY REFERENCES threads (id) ON DELETE CASCADE,
                model TEXT,
                changed_by_id TEXT,
                changed_utc TEXT NOT NULL
            )
            """,
            "ALTER TABLE messages ADD COLUMN replaced_utc TEXT",
        ),
    ),
    # Thread, message and session ids are never reused (the journal, buttons, trail and live sessions name them),
    # and a title remembers the message it came from (``title_message_id``; storage/erasure.py blanks it with the
    # message). SQLite rebuilds the three tables with every row and id (foreign keys off meanwhile, see
    # ``migrate``), counters above every id the journal names; Postgres's identities never reuse one. The
    # backfill takes each titled thread's first user message if the title could come from it (its text starts
    # with the title, which Discord cuts with "…", or it changed since); a title whose message changed goes now.
    Migration(
        "m008_ids_never_reused_and_title_source",
        (
            "UPDATE threads SET title_message_id = (SELECT m.platform_message_id FROM messages m "
            "WHERE m.id = (SELECT MIN(f.id) FROM messages f WHERE f.thread_id = threads.id AND f.role = 'user') "
            "AND (m.deleted_utc IS NOT NULL OR m.edited_utc IS NOT NULL "
            "OR substr(m.content, 1, length(rtrim(threads.title, '…'))) = rtrim(threads.title, '…'))) "
            "WHERE title IS NOT NULL",
            "UPDATE threads SET title = NULL, title_message_id = NULL WHERE title_message_id IN "
            "(SELECT m.platform_message_id FROM messages m WHERE m.thread_id = threads.id "
            "AND (m.deleted_utc IS NOT NULL OR m.edited_utc IS NOT NULL))",
        ),
        sqlite=(
            *_rebuild(
                "threads",
                _THREADS.replace("{id}", "{id_never_reused}").replace(
                    "last_message_utc TEXT,", "last_message_utc TEXT,\n                title_message_id TEXT,"
                ),
                "id, platform, workspace, channel, thread, title, created_utc, last_message_utc",
            ),
            *_rebuild(
                "messages",
                _MESSAGES.replace("{id}", "{id_never_reused}").replace(
                    "deleted_utc TEXT,", "deleted_utc TEXT,\n                replaced_utc TEXT,"
                ),
                "id, thread_id, platform_message_id, author_id, author_name, role, content, attachments_json, "
                "reply_state, sent_utc, logged_utc, edited_utc, deleted_utc, replaced_utc",
                _MESSAGES_WAITING,  # the index and the search triggers went with the old table; the index
                *_FTS_TRIGGERS,  # itself keeps its entries (every row kept its id)
            ),
            # A live session writes its rebuilt summary back by session id (storage/sessions.py).
            *_rebuild(
                "sessions",
                _SESSIONS.replace("{id}", "{id_never_reused}"),
                "id, thread_id, origin, model, started_utc, summary, summary_through_message_id",
                _SESSIONS_BY_THREAD,
            ),
            *(
                statement
                for table, journaled in (("threads", "thread_id"), ("messages", "message_id"))
                for statement in (
                    f"INSERT INTO sqlite_sequence (name, seq) SELECT '{table}', 0 WHERE NOT EXISTS "
                    f"(SELECT 1 FROM sqlite_sequence WHERE name = '{table}')",
                    f"UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT COALESCE(MAX({journaled}), 0) FROM erasures)) "
                    f"WHERE name = '{table}'",
                )
            ),
        ),
        postgres=("ALTER TABLE threads ADD COLUMN title_message_id TEXT",),
    ),
    # The turn journal: a tool turn's steps and each call's state, so an interrupted turn can resume
    # (storage/journal.py). The trail becomes the journal: a call's ``tool_calls`` row is written when the model
    # asks for it ('requested') and moves through its states to 'done' (or 'failed', 'denied', 'expired'); rows
    # written before this upgrade were finished calls, hence the default. ``turn_steps`` holds each model step
    # that asked for tools; ``closed_utc`` is set when the turn's answer is logged or the turn is dropped.
    Migration(
        "m009_turn_journal",
        (
            """
            CREATE TABLE turn_steps (
                {id_never_reused},
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
        ),
    ),
)
