"""Postgres leases: one row per thread or shard, expiry by the server's clock, a fencing token per acquisition.

The rules of ``storage/leases.py``, in SQL:

- **acquire** is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` statement: the row lock makes two workers
  racing for a free lease end with one holder; taking it from nobody or from an expired holder adds one to the
  token, renewing one's own keeps it.
- **the fence check** (:func:`check_fence`, in storage/postgres/db.py beside the transaction it guards) runs
  inside the caller's write transaction and locks the lease row ``FOR SHARE`` until that transaction ends: a
  takeover (an UPDATE of the row) waits for the write to commit, and a write after a takeover finds another
  holder or token and raises :class:`LeaseLost`. Either the write happened while the lease was held, or it did
  not happen.
- **wake-ups** are ``pg_notify`` on one channel, received on a dedicated connection (never a pooled one: a pool
  would hand the LISTEN to whoever borrows the connection next). A hint may be lost while that connection
  reconnects; :meth:`PostgresLeases.claimable_waiting` is what workers poll, and it is the truth.

Expiry uses ``clock_timestamp()`` (the time of the statement, not of the transaction's start).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

import psycopg

from storage.leases import THREAD_PREFIX, Fence, Wake
from storage.postgres.db import PostgresDatabase, check_fence

__all__ = ["WAKE_CHANNEL", "WORKER_TABLES", "PostgresLeases", "check_fence"]

log = logging.getLogger(__name__)

WAKE_CHANNEL = "threadkeeper_wake"
RECONNECT_S = 1.0

# Live state of the workers, not part of the log (migrate-db copies none of it); the table is made by the
# migration ``pg_leases`` (storage/revisions.py).
WORKER_TABLES = ("leases",)

_ACQUIRE = """
INSERT INTO leases AS l (resource, holder, token, acquired_utc, expires_utc)
VALUES (%(resource)s, %(holder)s, 1, clock_timestamp(), clock_timestamp() + %(ttl)s * interval '1 second')
ON CONFLICT (resource) DO UPDATE SET
    holder = EXCLUDED.holder,
    token = CASE WHEN l.holder = EXCLUDED.holder THEN l.token ELSE l.token + 1 END,
    acquired_utc = CASE WHEN l.holder = EXCLUDED.holder THEN l.acquired_utc ELSE clock_timestamp() END,
    expires_utc = EXCLUDED.expires_utc
WHERE l.holder IS NULL OR l.holder = EXCLUDED.holder OR l.expires_utc <= clock_timestamp()
RETURNING token
"""

_CLAIMABLE_WAITING = f"""
SELECT t.id FROM threads t
WHERE t.id IN (SELECT thread_id FROM messages WHERE reply_state = 'waiting')
  AND t.platform = ANY(%(platforms)s)
  AND NOT EXISTS (
      SELECT 1 FROM leases l WHERE l.resource = '{THREAD_PREFIX}' || t.id AND l.holder IS NOT NULL
      AND l.holder <> %(holder)s AND l.expires_utc > clock_timestamp())
  AND NOT EXISTS (
      SELECT 1 FROM cards c WHERE c.thread_id = t.id AND c.state = 'pending' AND c.card_message_id IS NOT NULL)
ORDER BY t.id LIMIT %(limit)s
"""


class PostgresLeases:
    """:class:`storage.leases.Leases` on Postgres."""

    shared = True

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db
        self._listening = asyncio.Event()

    async def acquire(self, *, resource: str, holder: str, ttl_s: float) -> Fence | None:
        row = await self._db.fetchone(_ACQUIRE, {"resource": resource, "holder": holder, "ttl": ttl_s})
        return None if row is None else Fence(resource=resource, holder=holder, token=int(row["token"]))

    async def holder_of(self, *, resource: str) -> str | None:
        row = await self._db.fetchone(
            "SELECT holder FROM leases WHERE resource = %s AND holder IS NOT NULL AND expires_utc > clock_timestamp()",
            (resource,),
        )
        return None if row is None else str(row["holder"])

    async def renew(self, *, holder: str, ttl_s: float) -> dict[str, Fence]:
        rows = await self._db.fetchall(
            "UPDATE leases SET expires_utc = clock_timestamp() + %s * interval '1 second' "
            "WHERE holder = %s AND expires_utc > clock_timestamp() RETURNING resource, token",
            (ttl_s, holder),
        )
        return {
            str(row["resource"]): Fence(resource=str(row["resource"]), holder=holder, token=int(row["token"]))
            for row in rows
        }

    async def release(self, *, holder: str, resources: Sequence[str] | None = None) -> int:
        if resources is None:
            return await self._db.execute(
                "UPDATE leases SET holder = NULL, expires_utc = clock_timestamp() WHERE holder = %s", (holder,)
            )
        if not resources:
            return 0
        return await self._db.execute(
            "UPDATE leases SET holder = NULL, expires_utc = clock_timestamp() WHERE holder = %s AND resource = ANY(%s)",
            (holder, list(resources)),
        )

    async def claimable_waiting(self, *, holder: str, platforms: Sequence[str], limit: int) -> list[int]:
        rows = await self._db.fetchall(
            _CLAIMABLE_WAITING, {"holder": holder, "platforms": list(platforms), "limit": limit}
        )
        return [int(row["id"]) for row in rows]

    async def notify(self, wake: Wake) -> None:
        await self._db.execute("SELECT pg_notify(%s, %s)", (WAKE_CHANNEL, wake.payload()))

    async def wakes(self, *, holder: str) -> AsyncIterator[Wake]:
        """Hints for ``holder`` from a connection of its own, reconnecting after a loss until cancelled."""
        while True:
            try:
                connection = await psycopg.AsyncConnection.connect(self._db.url, autocommit=True)
            except psycopg.Error as exc:
                log.warning("could not open the wake-up connection (%s); polling meanwhile", exc)
                await asyncio.sleep(RECONNECT_S)
                continue
            try:
                await connection.execute(f"LISTEN {WAKE_CHANNEL}")
                self._listening.set()
                async for notice in connection.notifies():
                    wake = Wake.from_payload(notice.payload)
                    if wake is not None and wake.to == holder:
                        yield wake
            except psycopg.Error as exc:
                log.warning("the wake-up connection broke (%s); reconnecting, polling meanwhile", exc)
                await asyncio.sleep(RECONNECT_S)
            finally:
                self._listening.clear()
                await connection.close()

    async def listening(self) -> None:
        await self._listening.wait()

    async def close(self) -> None:
        return None
