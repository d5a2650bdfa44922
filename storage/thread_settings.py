"""ThreadSettings: what people chose for one thread from inside it: its model, its reply mode.

One row per thread, deleted with the thread (``ON DELETE CASCADE``), so ``forget`` takes the choices with it. The
store only keeps what was chosen; whether a model is allowed (``LLM_MODELS``) and what a reply mode means
(``bots/router/reply_modes.py``) are the caller's business. One class for both backends
(``storage.protocols.ThreadSettings``, ``storage/sql.py``).
"""

from __future__ import annotations

from datetime import datetime

from storage.records import iso
from storage.sql import SqlDatabase


class ThreadSettings:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def model(self, *, thread_id: int) -> str | None:
        """The model chosen for the thread, or None when nobody chose one."""
        row = await self._db.fetchone("SELECT model FROM thread_settings WHERE thread_id = ?", (thread_id,))
        return None if row is None or row["model"] is None else str(row["model"])

    async def set_model(self, *, thread_id: int, model: str, changed_by_id: str, now: datetime) -> None:
        """Remember ``model`` for the thread (replacing any earlier choice)."""
        await self._db.execute(
            "INSERT INTO thread_settings (thread_id, model, changed_by_id, changed_utc) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (thread_id) DO UPDATE SET model = excluded.model, changed_by_id = excluded.changed_by_id, "
            "changed_utc = excluded.changed_utc",
            (thread_id, model, changed_by_id, iso(now)),
        )

    async def reply_mode(self, *, thread_id: int) -> str | None:
        """The reply mode chosen for the thread (``all``, ``mention``, ``auto``), or None when nobody chose one."""
        row = await self._db.fetchone("SELECT reply_mode FROM thread_settings WHERE thread_id = ?", (thread_id,))
        return None if row is None or row["reply_mode"] is None else str(row["reply_mode"])

    async def set_reply_mode(self, *, thread_id: int, mode: str, changed_by_id: str, now: datetime) -> None:
        """Remember ``mode`` for the thread (replacing any earlier choice; the model choice stays)."""
        await self._db.execute(
            "INSERT INTO thread_settings (thread_id, reply_mode, changed_by_id, changed_utc) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (thread_id) DO UPDATE SET reply_mode = excluded.reply_mode, "
            "changed_by_id = excluded.changed_by_id, changed_utc = excluded.changed_utc",
            (thread_id, mode, changed_by_id, iso(now)),
        )
