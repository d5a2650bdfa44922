"""UsageLog: the tokens and cost of every model call behind an answer or a summary.

Rows are written after the reply is posted (bots/operator/usage.py batches a turn's calls into one insert), read for
``threadkeeper stats`` and for the per-person daily cap. Days are UTC days: ``created_utc`` is an ISO string,
so a day's rows are a prefix range and the ``(user_id, created_utc)`` index serves the cap's query. Postgres
sums integers into ``numeric``: the totals are cast back, so both backends return ints and floats.
"""

from __future__ import annotations

from datetime import datetime

from storage.records import Grouping, UsageRow, UsageTotal, iso, record_from_row
from storage.sql import SqlDatabase

_GROUP_KEYS = {
    Grouping.DAY: "substr(u.created_utc, 1, 10)",
    Grouping.USER: "COALESCE(u.user_id, '(none)') || COALESCE(' ' || "
    "(SELECT m.author_name FROM messages m WHERE m.author_id = u.user_id ORDER BY m.id DESC LIMIT 1), '')",
    Grouping.THREAD: "COALESCE(t.platform || ':' || t.workspace || ':' || t.channel || ':' || t.thread "
    "|| COALESCE(' ' || t.title, ''), '(forgotten thread)')",
}


class UsageLog:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def record(self, rows: list[UsageRow]) -> None:
        """Write a turn's calls in one transaction."""
        if not rows:
            return
        values = [
            (r.thread_id, r.user_id, r.purpose, r.model, r.prompt_tokens, r.completion_tokens, int(r.tokens_counted),
             r.cost_usd, iso(r.created_utc)) for r in rows
        ]  # fmt: skip
        await self._db.executemany(
            "INSERT INTO usage (thread_id, user_id, purpose, model, prompt_tokens, completion_tokens, "
            "tokens_counted, cost_usd, created_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            values,
        )

    async def tokens_since(self, *, user_id: str, since: datetime) -> int:
        """Tokens in and out of the calls made for ``user_id`` since ``since``."""
        row = await self._db.fetchone(
            "SELECT CAST(COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS BIGINT) AS n FROM usage "
            "WHERE user_id = ? AND created_utc >= ?",
            (user_id, iso(since)),
        )
        return 0 if row is None else int(row["n"])

    async def totals(self, *, by: Grouping, since: datetime | None = None) -> list[UsageTotal]:
        """Usage grouped by thread, user or UTC day, since ``since`` (all of it when None)."""
        key = _GROUP_KEYS[by]
        order = "key" if by is Grouping.DAY else "cost_usd DESC, SUM(u.prompt_tokens + u.completion_tokens) DESC"
        rows = await self._db.fetchall(
            f"SELECT {key} AS key, "
            "SUM(CASE WHEN u.purpose = 'answer' THEN 1 ELSE 0 END) AS answers, "
            "SUM(CASE WHEN u.purpose = 'summary' THEN 1 ELSE 0 END) AS summaries, "
            "CAST(SUM(u.prompt_tokens) AS BIGINT) AS prompt_tokens, "
            "CAST(SUM(u.completion_tokens) AS BIGINT) AS completion_tokens, "
            "COALESCE(SUM(u.cost_usd), 0.0) AS cost_usd, "
            "SUM(CASE WHEN u.cost_usd IS NULL THEN 1 ELSE 0 END) AS unpriced_calls "
            "FROM usage u LEFT JOIN threads t ON t.id = u.thread_id "
            "WHERE u.created_utc >= ? GROUP BY 1 ORDER BY " + order,
            (iso(since) if since is not None else "",),
        )
        return [record_from_row(UsageTotal, row) for row in rows]
