"""BoundedCache: a small map for adapter memory that must not grow with the bot's age.

A long-running process sees an unbounded number of threads and users. What an adapter remembers about them
(threads already backfilled, display names) is only an optimisation, so it is capped (least recently used
entries go first) and, where the platform's truth can change, expires.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """At most ``max_entries`` entries, least recently used evicted first, each kept at most ``ttl_s``."""

    def __init__(
        self, *, max_entries: int, ttl_s: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The live value for ``key`` (now the most recently used), or None when absent or expired."""
        entry = self._live(key)
        return None if entry is None else entry[1]

    def __contains__(self, key: K) -> bool:
        return self._live(key) is not None

    def _live(self, key: K) -> tuple[float, V] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._ttl_s is not None and self._clock() - entry[0] >= self._ttl_s:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: K, value: V) -> None:
        self._entries[key] = (self._clock(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
