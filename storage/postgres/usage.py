"""UsageLog on Postgres (the contract of storage/usage.py): the same UTC-day prefix ranges on ``created_utc``.

Postgres sums integers into ``numeric``; the totals are cast back so both backends return ints and floats.
"""

from __future__ import annotations

from datetime import datetime

from storage.postgres.db import PostgresDatabase
from storage.records import Grouping, UsageRow, UsageTotal, iso, usage_total_from_row

_GROUP_KEYS = {
    Grouping.DAY: "substr(u.created_utc, 1, 10)",
    Grouping.USER: "COALESCE(u.user_id, '(none)') || COALESCE(' ' || "
    "(SELECT m.author_name FROM messages m WHERE m.author_id = u.user_id ORDER BY m.id DESC LIMIT 1), '')",
    Grouping.THREAD: "COALESCE(t.platform || ':' || t.workspace || ':' || t.channel || ':' || t.thread "
    "|| COALESCE(' ' || t.title, ''), '(forgotten thread)')",
}


class PostgresUsageLog:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def record(self, rows: list[UsageRow]) -> None:
        if not rows:
            return
        await self._db.executemany(
            "INSERT INTO usage (thread_id, user_id, purpose, model, prompt_tokens, completion_tokens, "
            "tokens_counted, cost_usd, created_utc) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    r.thread_id,
                    r.user_id,
                    r.purpose,
                    r.model,
                    r.prompt_tokens,
                    r.completion_tokens,
                    int(r.tokens_counted),
                    r.cost_usd,
                    iso(r.created_utc),
                )
                for r in rows
            ],
        )

    async def tokens_since(self, *, user_id: str, since: datetime) -> int:
        row = await self._db.fetchone(
            "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0)::bigint AS n FROM usage "
            "WHERE user_id = %s AND created_utc >= %s",
            (user_id, iso(since)),
        )
        return 0 if row is None else int(row["n"])

    async def totals(self, *, by: Grouping, since: datetime | None = None) -> list[UsageTotal]:
        key = _GROUP_KEYS[by]
        order = "key" if by is Grouping.DAY else "cost_usd DESC, SUM(u.prompt_tokens + u.completion_tokens) DESC"
        rows = await self._db.fetchall(
            f"SELECT {key} AS key, "
            "COUNT(*) FILTER (WHERE u.purpose = 'answer') AS answers, "
            "COUNT(*) FILTER (WHERE u.purpose = 'summary') AS summaries, "
            "SUM(u.prompt_tokens)::bigint AS prompt_tokens, SUM(u.completion_tokens)::bigint AS completion_tokens, "
            "COALESCE(SUM(u.cost_usd), 0.0) AS cost_usd, COUNT(*) FILTER (WHERE u.cost_usd IS NULL) AS unpriced_calls "
            "FROM usage u LEFT JOIN threads t ON t.id = u.thread_id "
            "WHERE u.created_utc >= %s GROUP BY 1 ORDER BY " + order,
            (iso(since) if since is not None else "",),
        )
        return [usage_total_from_row(row) for row in rows]
