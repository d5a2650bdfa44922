"""ThreadSearch on Postgres: the ``content_tsv`` column (a stored generated tsvector) and its GIN index.

The ``simple`` text-search configuration lower-cases and splits on non-word characters without stemming, like
FTS5's unicode61 tokenizer; unlike it, it keeps diacritics ("café" does not find "cafe"). The model's query is
reduced to plain words (``storage.records.search_words``), each a quoted lexeme, OR-ed together, so no tsquery
syntax in it can fail or widen the search. Best first is ``ts_rank`` (then the newest), as FTS5's bm25 ranks
the SQLite side; the two agree on which messages match, not always on the order of equally good ones.
"""

from __future__ import annotations

from storage.postgres.db import PostgresDatabase
from storage.records import SearchHit, search_words


def tsquery(text: str) -> str | None:
    """The words of ``text`` as a tsquery matching any of them; None for no words."""
    words = search_words(text)
    return " | ".join(f"'{word}'" for word in words) if words else None


class PostgresThreadSearch:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def search(self, *, thread_id: int, query: str, limit: int) -> list[SearchHit]:
        match = tsquery(query)
        if match is None or limit < 1:
            return []
        rows = await self._db.fetchall(
            "SELECT id, author_name, role, sent_utc, content FROM messages, to_tsquery('simple', %s) AS q "
            "WHERE content_tsv @@ q AND thread_id = %s AND deleted_utc IS NULL AND content != '' "
            "ORDER BY ts_rank(content_tsv, q) DESC, id DESC LIMIT %s",
            (match, thread_id, limit),
        )
        return [SearchHit(int(r["id"]), r["author_name"], r["role"], r["sent_utc"], r["content"]) for r in rows]
