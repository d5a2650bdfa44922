"""ThreadSettings: what people chose for one thread from inside it: its model, its reply mode.

One row per thread, deleted with the thread (``ON DELETE CASCADE``), so ``forget`` takes the choices with it. The
store only keeps what was chosen; whether a model is allowed (``LLM_MODELS``) and what a reply mode means
(``bots/router/reply_modes.py``) are the caller's business. One class for both backends
(``storage.protocols.ThreadSettings``, ``storage/sql.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from storage.records import iso
from storage.sql import SqlDatabase


class ThreadSettings:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def model(self, *, thread_id: int) -> str | None:
        """The model chosen for the thread, or None when nobody chose one."""
        return await self._chosen("model", thread_id)

    async def set_model(self, *, thread_id: int, model: str, changed_by_id: str, now: datetime) -> None:
        """Remember ``model`` for the thread (replacing any earlier choice; the reply mode stays)."""
        await self._choose("model", model, thread_id=thread_id, changed_by_id=changed_by_id, now=now)

    async def reply_mode(self, *, thread_id: int) -> str | None:
        """The reply mode chosen for the thread (``all``, ``mention``, ``auto``), or None when nobody chose one."""
        return await self._chosen("reply_mode", thread_id)

    async def set_reply_mode(self, *, thread_id: int, mode: str, changed_by_id: str, now: datetime) -> None:
        """Remember ``mode`` for the thread (replacing any earlier choice; the model choice stays)."""
        await self._choose("reply_mode", mode, thread_id=thread_id, changed_by_id=changed_by_id, now=now)

    # One statement per kind of access, the column one of the literals above (never from outside).

    async def _chosen(self, column: Literal["model", "reply_mode"], thread_id: int) -> str | None:
        row = await self._db.fetchone(f"SELECT {column} FROM thread_settings WHERE thread_id = ?", (thread_id,))
        return None if row is None or row[column] is None else str(row[column])

    async def _choose(
        self,
        column: Literal["model", "reply_mode"],
        value: str,
        *,
        thread_id: int,
        changed_by_id: str,
        now: datetime,
    ) -> None:
        await self._db.execute(
            f"INSERT INTO thread_settings (thread_id, {column}, changed_by_id, changed_utc) VALUES (?, ?, ?, ?) "
            f"ON CONFLICT (thread_id) DO UPDATE SET {column} = excluded.{column}, "
            "changed_by_id = excluded.changed_by_id, changed_utc = excluded.changed_utc",
            (thread_id, value, changed_by_id, iso(now)),
        )
