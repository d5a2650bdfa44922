"""OwnedThreads: the router's view of which threads this worker owns, and what changes when that changes.

``bots/workers/ownership.py`` keeps the leases; this is what the router does with them. A thread taken just now (from
nobody, or from a worker that died or stalled) may carry state this process kept from an earlier ownership:
its session is stale, since another worker may have answered meanwhile, so it is dropped, and a card the last
owner left mid catch-up becomes clickable again. A thread whose lease is lost (renewal found it gone, or a
fenced write was refused with :class:`storage.leases.LeaseLost`) loses its session and its queued work here;
the new owner answers what waits, from the log. On SQLite nothing here ever happens: one worker owns it all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bots.router.thread_state import ThreadState, ThreadStates
from bots.workers.ownership import ThreadOwnership
from storage.leases import Fence, LeaseLost

log = logging.getLogger(__name__)


class OwnedThreads:
    """Claims, fences and letting go, for the router; see the module docstring."""

    def __init__(
        self,
        *,
        ownership: ThreadOwnership,
        states: ThreadStates,
        reopen_interrupted: Callable[[ThreadState], Awaitable[None]],
    ) -> None:
        self._ownership = ownership
        self._states = states
        self._reopen_interrupted = reopen_interrupted

    async def claim(self, state: ThreadState) -> str | None:
        """None when this worker owns the thread now (taking it if nobody live does); else the owner's id."""
        claim = await self._ownership.claim(state.thread_id)
        if isinstance(claim, str):
            return claim
        if claim.new:
            self.let_go(state)
            await self._reopen_interrupted(state)
        return None

    def fence(self, state: ThreadState) -> Fence | None:
        """What the thread's ownership-dependent writes carry (None on SQLite)."""
        return self._ownership.fence(state.thread_id)

    def let_go(self, state: ThreadState, *, cancel: bool = True) -> None:
        """Forget the thread's session and in-memory bookkeeping: another worker owns (or owned) it."""
        if cancel and state.worker is not None and state.worker is not asyncio.current_task():
            state.worker.cancel()
        state.inflight.clear()
        state.card_open = None
        self._states.end_session(state)

    async def lost(self, thread_id: int) -> None:
        """Renewal found the thread's lease gone."""
        state = self._states.by_thread_id(thread_id)
        if state is not None:
            log.warning("%s: this worker lost the thread's lease; its session is dropped", state.key)
            self.let_go(state)

    def refused(self, state: ThreadState, exc: LeaseLost) -> None:
        """A fenced write in the thread was refused: stop here, the thread's new owner answers."""
        log.warning("%s: a write was refused (%s); the session is dropped and another worker answers", state.key, exc)
        self._ownership.forget(state.thread_id)
        self.let_go(state, cancel=False)
