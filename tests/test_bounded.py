"""BoundedCache: what adapters remember stays within its cap, and expires where the platform can change."""

from __future__ import annotations

from bots.router.bounded import BoundedCache


def test_the_least_recently_used_entry_goes_first_when_the_cap_is_reached() -> None:
    cache: BoundedCache[str, int] = BoundedCache(max_entries=3)
    for n, key in enumerate("abc"):
        cache.put(key, n)
    assert cache.get("a") == 0  # "a" is now the most recently used
    cache.put("d", 3)
    assert len(cache) == 3
    assert "b" not in cache and [cache.get(k) for k in "acd"] == [0, 2, 3]
    for n in range(1000):
        cache.put(f"k{n}", n)
    assert len(cache) == 3


def test_entries_expire_after_their_time_to_live() -> None:
    now = [0.0]
    cache: BoundedCache[str, str] = BoundedCache(max_entries=10, ttl_s=3600, clock=lambda: now[0])
    cache.put("U1", "Alice")
    now[0] = 3599.0
    assert cache.get("U1") == "Alice"
    now[0] = 3600.0
    assert cache.get("U1") is None and "U1" not in cache and len(cache) == 0


def test_a_set_of_keys_stores_none_and_still_knows_its_members() -> None:
    seen: BoundedCache[str, None] = BoundedCache(max_entries=2)
    seen.put("t1", None)
    assert "t1" in seen and "t2" not in seen
    seen.discard("t1")
    assert "t1" not in seen
