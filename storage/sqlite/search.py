"""ThreadSearch: full-text search of one thread's log, for the ``search_thread`` tool.

The FTS5 index covers every message's current text and a voice message's transcript (m012); triggers keep it in
step with inserts, edits and deletions (``storage/revisions.py``), so a deleted message is never found and an
edited one is found by its new text. A search never leaves its thread. The query comes from the model: it is
reduced to plain words, each quoted, so no FTS5 syntax in it can fail or widen the search.
"""

from __future__ import annotations

from storage.records import SearchHit, search_words
from storage.sqlite.db import Database


def fts_query(text: str) -> str | None:
    """The words of ``text`` as an FTS5 query matching any of them (best matches first); None for no words."""
    words = search_words(text)
    return " OR ".join(f'"{word}"' for word in words) if words else None


class ThreadSearch:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def search(self, *, thread_id: int, query: str, limit: int) -> list[SearchHit]:
        """The ``limit`` messages of the thread that match ``query`` best, best first."""
        match = fts_query(query)
        if match is None or limit < 1:
            return []
        rows = await self._db.fetchall(
            "SELECT m.id, m.author_name, m.role, m.sent_utc, m.content, m.transcript FROM messages_fts "
            "JOIN messages m ON m.id = messages_fts.rowid "
            "WHERE messages_fts MATCH ? AND m.thread_id = ? AND m.deleted_utc IS NULL AND m.replaced_utc IS NULL "
            "AND (m.content != '' OR m.transcript IS NOT NULL) "
            "ORDER BY bm25(messages_fts) LIMIT ?",
            (match, thread_id, limit),
        )
        return [
            SearchHit(r["id"], r["author_name"], r["role"], r["sent_utc"], r["content"], r["transcript"]) for r in rows
        ]
