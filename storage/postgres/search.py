"""ThreadSearch on Postgres: full-text matching of one thread's messages, computed when asked.

A search never leaves its thread, so the thread's rows are found through the ``(thread_id, ...)`` unique index;
those containing a query word (``ILIKE``, a cheap first pass) get ``to_tsvector('simple', content)`` computed
and matched. No index holds a second copy of the text for forgetting to chase (storage/revisions.py);
docs/PERFORMANCE.md (S1) says what a large thread costs.

The ``simple`` configuration lower-cases and splits on non-word characters without stemming, like FTS5's
unicode61 tokenizer; unlike it, it keeps diacritics ("café" does not find "cafe"). The model's query is reduced
to plain words (``storage.records.search_words``), each a quoted lexeme, OR-ed together, so no tsquery syntax in
it can fail or widen the search. Best first is ``ts_rank`` (then the newest), as FTS5's bm25 ranks the SQLite
side; the two agree on which messages match, not always on the order of equally good ones.
"""

from __future__ import annotations

from storage.postgres.db import PostgresDatabase
from storage.records import SearchHit, search_words

_SEARCHED = "(content || ' ' || COALESCE(transcript, ''))"  # a voice message's transcript too (m012)
_SEARCH = (
    "SELECT id, author_name, role, sent_utc, content, transcript FROM ("
    f"SELECT id, author_name, role, sent_utc, content, transcript, to_tsvector('simple', {_SEARCHED}) AS words "
    "FROM messages WHERE thread_id = %s AND deleted_utc IS NULL AND replaced_utc IS NULL "
    f"AND (content != '' OR transcript IS NOT NULL) AND {_SEARCHED} ILIKE ANY(%s)) AS m, "
    "to_tsquery('simple', %s) AS q WHERE words @@ q ORDER BY ts_rank(words, q) DESC, id DESC LIMIT %s"
)


def tsquery(words: list[str]) -> str:
    """``words`` as a tsquery matching any of them, each a quoted lexeme."""
    return " | ".join(f"'{word}'" for word in words)


def contains_any(words: list[str]) -> list[str]:
    """ILIKE patterns for ``words`` (a message matching a word contains it), wildcards escaped."""
    return ["%" + word.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "%" for word in words]


class PostgresThreadSearch:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def search(self, *, thread_id: int, query: str, limit: int) -> list[SearchHit]:
        words = search_words(query)
        if not words or limit < 1:
            return []
        rows = await self._db.fetchall(_SEARCH, (thread_id, contains_any(words), tsquery(words), limit))
        return [
            SearchHit(int(r["id"]), r["author_name"], r["role"], r["sent_utc"], r["content"], r["transcript"])
            for r in rows
        ]
