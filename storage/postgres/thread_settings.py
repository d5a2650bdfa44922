"""Per-thread choices (the model) on Postgres (the contract of storage/thread_settings.py)."""

from __future__ import annotations

from datetime import datetime

from storage.postgres.db import PostgresDatabase
from storage.records import iso


class PostgresThreadSettings:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def model(self, *, thread_id: int) -> str | None:
        row = await self._db.fetchone("SELECT model FROM thread_settings WHERE thread_id = %s", (thread_id,))
        return None if row is None or row["model"] is None else str(row["model"])

    async def set_model(self, *, thread_id: int, model: str, changed_by_id: str, now: datetime) -> None:
        await self._db.execute(
            "INSERT INTO thread_settings (thread_id, model, changed_by_id, changed_utc) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (thread_id) DO UPDATE SET model = excluded.model, changed_by_id = excluded.changed_by_id, "
            "changed_utc = excluded.changed_utc",
            (thread_id, model, changed_by_id, iso(now)),
        )
