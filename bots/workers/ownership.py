"""ThreadOwnership: this worker's leases, renewed while it lives, handed back at once on a clean stop.

Several workers share one Postgres (``storage/leases.py`` has the rules). The router asks :meth:`claim` before it
answers a thread, posts its card or resolves a click: the worker that sees a thread's waiting message first
takes the free lease; when another live worker holds it, :meth:`claim` says who, and the router wakes that
worker instead (:meth:`wake`). A lease held here is taken on trust only until the time its last acquisition or
renewal guarantees (the lease time, counted from before that statement was sent); past it (a renewal loop that
stalled with the event loop, a slow database) :meth:`claim` asks the database again. Beside the bot run three
loops:

- **renewal**, every third of the lease time: one statement extends every lease of this worker; a lease that
  did not come back was lost (the worker stalled past its expiry and another may have taken it), and the router
  is told, so it drops the thread's session and stops writing there;
- **the poll**, the source of truth: threads with waiting messages that nobody live owns are attended to (taken,
  then answered, or given their "Where were we?" card: their owner died). Threads this worker owns are looked
  at every few rounds too, in case a wake-up was lost;
- **wake-ups**, hints from other workers (LISTEN/NOTIFY): a message they received in a thread this worker owns,
  or a card click they won.

On SQLite (:class:`storage.leases.SoleOwner`) this worker owns everything: :meth:`claim` costs nothing and
asks nothing, and no loop runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bots.workers.periodic import Periodic
from storage.leases import THREAD_PREFIX, Fence, Leases, Wake, shard_resource, thread_resource

log = logging.getLogger(__name__)

LEASE_S = 15.0
POLL_S = 2.0
OWN_THREADS_EVERY = 5  # poll rounds between looks at this worker's own waiting threads
POLL_BATCH = 200
ATTEND_AT_ONCE = 16


def new_worker_id() -> str:
    """Unique per process and readable in logs: host, pid, and a few random characters."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, slots=True)
class Claim:
    """This worker owns the thread. ``new``: it did not own it a moment ago, so what it held before is stale."""

    fence: Fence | None
    new: bool


class ThreadOwnership:
    """This worker's side of the leases; see the module docstring."""

    def __init__(
        self, *, leases: Leases, worker_id: str | None = None, lease_s: float = LEASE_S, poll_s: float = POLL_S
    ) -> None:
        self._leases = leases
        self.worker_id = worker_id or new_worker_id()
        self._lease_s = lease_s
        self._held: dict[str, Fence] = {}
        self._trusted_until: dict[str, float] = {}  # monotonic time until which a held lease cannot have expired
        self._lost_handlers: dict[str, Callable[[str], Awaitable[None]]] = {}
        self._renewal = Periodic(name="lease renewal", interval_s=lambda: lease_s / 3, work=self.renew)
        self._poll = Periodic(name="waiting-thread poll", interval_s=lambda: poll_s, work=self.poll_once)
        self._rounds = 0
        self._listener: asyncio.Task[None] | None = None
        self._attend: Callable[[int], Awaitable[None]] | None = None
        self._on_wake: Callable[[Wake], Awaitable[None]] | None = None
        self._on_thread_lost: Callable[[int], Awaitable[None]] | None = None
        self._platforms: Callable[[], Sequence[str]] = list
        self._stopped = False

    @property
    def shared(self) -> bool:
        return self._leases.shared

    @property
    def leases(self) -> Leases:
        return self._leases

    # -- claims ---------------------------------------------------------------------------------------------

    async def claim(self, thread_id: int) -> Claim | str:
        """This worker's claim on the thread (taking a free or expired lease), or the id of the live owner."""
        if not self.shared:
            return Claim(fence=None, new=False)
        resource = thread_resource(thread_id)
        held = self._held.get(resource)
        if held is not None and time.monotonic() < self._trusted_until.get(resource, 0.0):
            return Claim(fence=held, new=False)  # cannot have expired yet; a write's fence check has the last word
        if self._stopped:
            return await self._leases.holder_of(resource=resource) or "nobody (this worker is stopping)"
        # Not held, or held past the time its last renewal guaranteed (a stalled loop, a slow database): ask.
        since = time.monotonic()
        fence = await self._leases.acquire(resource=resource, holder=self.worker_id, ttl_s=self._lease_s)
        if fence is None:
            if held is not None:
                self._drop(resource)
                log.warning("lost the lease on thread %d (token %d) to another worker", thread_id, held.token)
                await self._lost(resource)
            owner = await self._leases.holder_of(resource=resource)
            return owner or await self.claim(thread_id)  # it expired between the two statements: try again
        self._hold(resource, fence, since=since)
        if fence == held:
            return Claim(fence=fence, new=False)  # still this worker's, the same acquisition
        log.info("took the lease on thread %d (token %d)", thread_id, fence.token)
        return Claim(fence=fence, new=True)

    def _hold(self, resource: str, fence: Fence, *, since: float) -> None:
        """Keep ``fence``; the database set its expiry after ``since``, so it holds at least until then + lease."""
        self._held[resource] = fence
        self._trusted_until[resource] = since + self._lease_s

    def _drop(self, resource: str) -> None:
        self._held.pop(resource, None)
        self._trusted_until.pop(resource, None)

    async def listening(self) -> None:
        """Return once wake-ups from other workers reach this one."""
        await self._leases.listening()

    def fence(self, thread_id: int) -> Fence | None:
        """What an ownership-dependent write in the thread carries (None on SQLite)."""
        return self._held.get(thread_resource(thread_id)) if self.shared else None

    async def acquire_shard(self, shard: int, *, on_lost: Callable[[str], Awaitable[None]]) -> int | None:
        """Take Discord shard ``shard``'s lease; its fencing token, or None while another worker holds it."""
        fence = await self.acquire(shard_resource(shard), on_lost=on_lost)
        return None if fence is None else fence.token

    async def release_shard(self, shard: int) -> None:
        """Hand shard ``shard``'s lease back at once (its gateway failed to connect)."""
        await self.leases.release(holder=self.worker_id, resources=[shard_resource(shard)])

    async def acquire(self, resource: str, *, on_lost: Callable[[str], Awaitable[None]]) -> Fence | None:
        """Take another kind of lease (a Discord shard) with this worker's renewal; ``on_lost`` when it goes."""
        if not self.shared:
            return Fence(resource=resource, holder=self.worker_id, token=1)
        if self._stopped:
            return None
        since = time.monotonic()
        fence = await self._leases.acquire(resource=resource, holder=self.worker_id, ttl_s=self._lease_s)
        if fence is not None:
            self._hold(resource, fence, since=since)
            self._lost_handlers[resource] = on_lost
        return fence

    async def elsewhere(self, thread_id: int) -> str | None:
        """The live worker owning the thread when it is not this one (approvals ask, without taking it)."""
        resource = thread_resource(thread_id)
        if not self.shared or (resource in self._held and time.monotonic() < self._trusted_until.get(resource, 0.0)):
            return None
        owner = await self._leases.holder_of(resource=resource)
        return None if owner == self.worker_id else owner

    def forget(self, thread_id: int) -> None:
        """The router let go of the thread after a write was refused: the lease is gone."""
        self._drop(thread_resource(thread_id))

    async def wake(self, owner: str, *, kind: str, thread_id: int, detail: dict[str, str] | None = None) -> None:
        """Hint the thread's owner; a lost hint costs a poll interval, nothing more."""
        try:
            await self._leases.notify(Wake(to=owner, kind=kind, thread_id=thread_id, detail=detail or {}))
        except Exception:
            log.exception("could not wake %s for thread %d; its poll will find the work", owner, thread_id)

    # -- the loops ------------------------------------------------------------------------------------------

    def start(
        self,
        *,
        attend: Callable[[int], Awaitable[None]],
        on_wake: Callable[[Wake], Awaitable[None]],
        on_thread_lost: Callable[[int], Awaitable[None]],
        platforms: Callable[[], Sequence[str]],
    ) -> None:
        """Run renewal, the poll and the wake-up listener (only when workers share the database). Idempotent."""
        if not self.shared or self._listener is not None:
            return
        self._attend, self._on_wake, self._platforms = attend, on_wake, platforms
        self._on_thread_lost = on_thread_lost
        self._renewal.start()
        self._poll.start()
        self._listener = asyncio.ensure_future(self._listen())

    async def renew(self) -> None:
        """Extend every lease; tell the owners of those that came back changed or not at all."""
        if not self.shared or not self._held:
            return
        since = time.monotonic()
        still = await self._leases.renew(holder=self.worker_id, ttl_s=self._lease_s)
        for resource, fence in list(self._held.items()):
            if still.get(resource) == fence:
                self._trusted_until[resource] = since + self._lease_s
                continue
            self._drop(resource)
            log.warning("lost the lease on %s (token %d): another worker may own it now", resource, fence.token)
            await self._lost(resource)

    async def _lost(self, resource: str) -> None:
        handler = self._lost_handlers.pop(resource, None)
        try:
            if handler is not None:
                await handler(resource)
            elif resource.startswith(THREAD_PREFIX) and self._on_thread_lost is not None:
                await self._on_thread_lost(int(resource.removeprefix(THREAD_PREFIX)))
        except Exception:
            log.exception("letting go of %s failed", resource)

    async def poll_once(self) -> None:
        """Attend to the waiting threads nobody live owns (and, every few rounds, to this worker's own)."""
        if self._attend is None:
            return
        self._rounds += 1
        own = self._rounds % OWN_THREADS_EVERY == 0
        thread_ids = await self._leases.claimable_waiting(
            holder=self.worker_id, platforms=self._platforms(), limit=POLL_BATCH
        )
        todo = [t for t in thread_ids if own or thread_resource(t) not in self._held]
        for start in range(0, len(todo), ATTEND_AT_ONCE):
            await asyncio.gather(*(self._attend_safely(t) for t in todo[start : start + ATTEND_AT_ONCE]))

    async def _attend_safely(self, thread_id: int) -> None:
        assert self._attend is not None
        try:
            await self._attend(thread_id)
        except Exception:
            log.exception("attending to thread %d failed; the next poll tries again", thread_id)

    async def _listen(self) -> None:
        assert self._on_wake is not None
        async for wake in self._leases.wakes(holder=self.worker_id):
            try:
                await self._on_wake(wake)
            except Exception:
                log.exception("handling a %s wake-up for thread %d failed", wake.kind, wake.thread_id)

    async def stop(self) -> None:
        """Stop the loops and hand every lease back at once, so other workers take over without waiting."""
        self._stopped = True
        await self._poll.stop()
        await self._renewal.stop()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        if self.shared:
            try:
                count = await self._leases.release(holder=self.worker_id)
                log.info("handed back %d lease(s)", count)
            except Exception:
                log.exception("could not hand the leases back; they expire within %.0f s", self._lease_s)
        self._held.clear()
        self._trusted_until.clear()
