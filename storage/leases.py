"""Who owns what: leases on threads and Discord shards, with fencing tokens, and the hints that wake an owner.

Several ``threadkeeper run`` workers on one Postgres share the threads. Each thread (and each Discord shard) has
at most one owner at a time: the worker holding its lease row. A lease has an expiry, renewed while the worker
lives, and a fencing token that grows every time a worker acquires it. Expiry is judged by the database's own
clock, never by a worker's, so workers whose clocks disagree still agree on who holds what.

A lease alone cannot stop a worker that stalled past its expiry (a long pause, a lost network) from writing
after another took over: so every write that depends on ownership (a reply and what it answered, a card's
state) carries the holder's :class:`Fence`, and the store checks it in the same transaction, holding the lease
row locked until the commit. A stale holder's write is refused with :class:`LeaseLost`; the router then drops
that thread's session and stops. No session-level advisory locks: a pool would drop or leak them.

Any worker may receive any event. It logs the event and acknowledges it, and when another worker owns the
thread it sends that worker a :class:`Wake`: a hint (LISTEN/NOTIFY on Postgres). What is waiting in the log is
the truth; workers also poll it (:meth:`Leases.claimable_waiting`), so a lost hint costs a poll interval, never
a message.

SQLite runs one worker per file (``storage/sqlite/lock.py``): :class:`SoleOwner` owns everything, fences nothing and
wakes nobody, so a single worker behaves exactly as before.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

THREAD_PREFIX = "thread:"
SHARD_PREFIX = "discord-shard:"


def thread_resource(thread_id: int) -> str:
    """The lease name of a thread's row."""
    return f"{THREAD_PREFIX}{thread_id}"


def shard_resource(shard_id: int) -> str:
    """The lease name of one Discord gateway shard."""
    return f"{SHARD_PREFIX}{shard_id}"


@dataclass(frozen=True, slots=True)
class Fence:
    """Proof of ownership carried by a write: the lease, its holder, and the token of this acquisition."""

    resource: str
    holder: str
    token: int


class LeaseLost(Exception):
    """A write carried a fence whose lease has expired or been taken by another worker since."""

    def __init__(self, fence: Fence) -> None:
        super().__init__(f"{fence.holder} no longer holds {fence.resource} (token {fence.token})")
        self.fence = fence


@dataclass(frozen=True, slots=True)
class Wake:
    """A hint for worker ``to``: something in thread ``thread_id`` wants its attention.

    ``kind`` is ``thread`` (messages wait), ``card`` (a card click another worker received and won; ``detail``
    carries the action and the clicker) or ``approval`` (a click on an approval another worker received; ``detail``
    carries the approval, the action and the clicker, and the owner decides), ``command`` (a command to run
    there) or ``stop`` (someone pressed Stop at another worker; ``detail`` carries who, and the owner stops its turn).
    """

    to: str
    kind: str
    thread_id: int
    detail: dict[str, str] = field(default_factory=dict)

    def payload(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_payload(cls, text: str) -> Wake | None:
        try:
            data = json.loads(text)
            return cls(
                to=str(data["to"]),
                kind=str(data["kind"]),
                thread_id=int(data["thread_id"]),
                detail={str(k): str(v) for k, v in dict(data.get("detail") or {}).items()},
            )
        except (ValueError, KeyError, TypeError):
            return None


class Leases(Protocol):
    """Leases with fencing tokens, the work up for grabs, and owner wake-ups (see the module docstring)."""

    @property
    def shared(self) -> bool:
        """True when other workers may share the database (then ownership must be asked, not assumed)."""

    async def acquire(self, *, resource: str, holder: str, ttl_s: float) -> Fence | None:
        """Take (or keep) the lease when it is free, expired, or ``holder``'s already; None when another holds it.

        Taking it from nobody or from an expired holder raises the token; renewing one's own keeps it.
        """

    async def holder_of(self, *, resource: str) -> str | None:
        """The worker holding a live lease on ``resource``, or None."""

    async def renew(self, *, holder: str, ttl_s: float) -> dict[str, Fence]:
        """Extend every live lease of ``holder``; return those it still holds (the others are lost)."""

    async def release(self, *, holder: str, resources: Sequence[str] | None = None) -> int:
        """Hand back ``resources`` (all of ``holder``'s leases when None) at once; return how many."""

    async def claimable_waiting(self, *, holder: str, platforms: Sequence[str], limit: int) -> list[int]:
        """Threads of ``platforms`` with messages waiting for an answer that ``holder`` owns or may take."""

    async def notify(self, wake: Wake) -> None:
        """Send a hint to ``wake.to`` (best effort: polling is the truth)."""

    def wakes(self, *, holder: str) -> AsyncIterator[Wake]:
        """The hints sent to ``holder``, until cancelled."""

    async def listening(self) -> None:
        """Return once hints sent from now on reach :meth:`wakes` (tests, and a worker's readiness)."""

    async def close(self) -> None: ...


class SoleOwner:
    """SQLite's :class:`Leases`: one worker per database file, which owns every thread and every shard."""

    shared = False

    async def acquire(self, *, resource: str, holder: str, ttl_s: float) -> Fence | None:
        return Fence(resource=resource, holder=holder, token=1)

    async def holder_of(self, *, resource: str) -> str | None:
        return None

    async def renew(self, *, holder: str, ttl_s: float) -> dict[str, Fence]:
        return {}

    async def release(self, *, holder: str, resources: Sequence[str] | None = None) -> int:
        return 0

    async def claimable_waiting(self, *, holder: str, platforms: Sequence[str], limit: int) -> list[int]:
        return []  # the start-up resume scan finds them; nobody else can have left any meanwhile

    async def notify(self, wake: Wake) -> None:
        return None

    async def wakes(self, *, holder: str) -> AsyncIterator[Wake]:
        return
        yield  # pragma: no cover - an empty async generator

    async def listening(self) -> None:
        return None

    async def close(self) -> None:
        return None
