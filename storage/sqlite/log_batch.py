"""The log's group-commit batch on SQLite: one hop to the database thread for the whole batch.

A statement per row costs little here: they all run on aiosqlite's thread inside one IMMEDIATE transaction
(``Database.run``), so the event loop waits once per batch, not once per row.
"""

from __future__ import annotations

import sqlite3

from storage.records import MESSAGE_COLUMNS, LoggedMessage, NewMessage, ThreadGone

_INSERT = (
    "INSERT INTO messages (thread_id, platform_message_id, author_id, author_name, role, content, attachments_json, "
    f"reply_state, sent_utc, logged_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING "
    f"RETURNING {MESSAGE_COLUMNS}"
)
_SELECT = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = ? AND platform_message_id = ?"


def typed_error(exc: BaseException) -> BaseException:
    if isinstance(exc, sqlite3.IntegrityError) and "FOREIGN KEY" in str(exc):
        return ThreadGone(str(exc))
    return exc


def write_messages(news: list[NewMessage], connection: sqlite3.Connection) -> list[tuple[LoggedMessage, bool]]:
    """Insert each message unless its (thread, platform id) is logged already; runs on the database thread."""
    results = []
    touched: dict[int, str] = {}
    for new in news:
        params = (new.thread_id, new.platform_message_id, new.author_id, new.author_name, new.role, new.content,
                  new.attachments_json, new.reply_state, new.sent_utc, new.logged_utc)  # fmt: skip
        row = connection.execute(_INSERT, params).fetchone()
        created = row is not None
        if created:
            touched[new.thread_id] = new.logged_utc
        else:
            row = connection.execute(_SELECT, (new.thread_id, new.platform_message_id)).fetchone()
        results.append((LoggedMessage.from_row(row), created))
    connection.executemany(
        "UPDATE threads SET last_message_utc = ? WHERE id = ?", [(when, tid) for tid, when in touched.items()]
    )
    return results
