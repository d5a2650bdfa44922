"""Discord gateway shards across workers: exactly one worker holds each shard, by a lease.

Discord allows one gateway connection per shard (``DISCORD_SHARDS``, default 1), and every event of a shard's
guilds arrives on that connection only. So a shard is a lease like a thread (``storage/leases.py``): the worker
holding ``discord-shard:N`` connects shard N's gateway; the others stay logged in to the REST API only, which
is all they need to answer the threads they own (the router wakes them for messages the gateway worker
receives). Each worker holds at most one shard, so run at least as many workers as shards.

When the holder dies, its lease expires and another worker's keeper (which tries every few seconds while it
holds no shard) takes the shard and connects; Discord replays nothing, and the backfill that exists for
restarts logs what was said meanwhile. A worker that loses its shard's lease while alive (it stalled past the
expiry) closes that gateway at once. On SQLite the single worker holds every shard.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bots.ownership import ThreadOwnership
from bots.periodic import Periodic
from storage.leases import shard_resource

log = logging.getLogger(__name__)

TRY_EVERY_S = 2.0


class ShardKeeper:
    """Takes a free shard's lease for this worker and keeps its gateway connected while the lease holds."""

    def __init__(
        self,
        *,
        ownership: ThreadOwnership,
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
            fence = await self._ownership.acquire(shard_resource(shard), on_lost=self._lost)
            if fence is None:
                continue
            self.shard = shard
            log.info("holding Discord shard %d of %d (token %d); connecting", shard, self._count, fence.token)
            try:
                await self._connect(shard)
            except BaseException:
                self.shard = None
                await self._ownership.leases.release(holder=self._ownership.worker_id, resources=[fence.resource])
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
