"""Discord gateway shards across workers: exactly one worker holds each shard, by a lease.

Discord allows one gateway connection per shard (``DISCORD_SHARDS``, default 1), and every event of a shard's
guilds arrives on that connection only. So a shard is a lease like a thread (the router's
``bots/workers/ownership.py`` takes it; this adapter never reaches storage): the worker holding ``discord-shard:N``
connects shard N's gateway; the others stay logged in to the REST API only, which is all they need to answer the
threads they own (the router wakes them for messages the gateway worker receives). Each worker holds at most one
shard, so run at least as many workers as shards.

When the holder dies, its lease expires and another worker's keeper (which tries every few seconds while it holds
no shard) takes the shard and connects; Discord replays nothing, and the backfill that exists for restarts logs
what was said meanwhile. A worker that loses its shard's lease while alive (it stalled past the expiry) closes that
gateway at once. On SQLite the single worker holds every shard.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from bots.workers.periodic import Periodic

log = logging.getLogger(__name__)

TRY_EVERY_S = 2.0


class ShardLeases(Protocol):
    """What the keeper needs of this worker's leases (``bots/workers/ownership.py``, handed in by the router)."""

    async def acquire_shard(self, shard: int, *, on_lost: Callable[[str], Awaitable[None]]) -> int | None: ...

    async def release_shard(self, shard: int) -> None: ...


class ShardKeeper:
    """Takes a free shard's lease for this worker and keeps its gateway connected while the lease holds."""

    def __init__(
        self,
        *,
        ownership: ShardLeases,
        shard_count: int,
        connect: Callable[[int], Awaitable[None]],
        disconnect: Callable[[], Awaitable[None]],
        try_every_s: float = TRY_EVERY_S,
    ) -> None:
        self._ownership = ownership
        self._count = shard_count
        self._connect = connect
        self._disconnect = disconnect
        self.shard: int | None = None
        self._periodic = Periodic(name="Discord shard lease", interval_s=lambda: try_every_s, work=self.take_free_shard)

    async def take_free_shard(self) -> int | None:
        """This worker's shard, taking the first free one (and connecting it) when it holds none."""
        if self.shard is not None:
            return self.shard
        for shard in range(self._count):
            token = await self._ownership.acquire_shard(shard, on_lost=self._lost)
            if token is None:
                continue
            self.shard = shard
            log.info("holding Discord shard %d of %d (token %d); connecting", shard, self._count, token)
            try:
                await self._connect(shard)
            except BaseException:
                self.shard = None
                await self._ownership.release_shard(shard)
                raise
            return shard
        return None

    async def _lost(self, resource: str) -> None:
        log.warning("lost the lease on Discord shard %s; closing its gateway", self.shard)
        self.shard = None
        await self._disconnect()

    def start(self) -> None:
        """Keep trying for a free shard while holding none (a dead holder's shard is taken within its lease)."""
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
