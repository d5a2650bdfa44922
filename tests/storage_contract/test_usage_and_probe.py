"""The usage log's sums and groupings, and the probe /readyz asks, on each backend."""

from __future__ import annotations

from datetime import timedelta

from storage.backends import Storage
from storage.records import Grouping, UsageRow, UsageTotal
from tests.storage_contract.conftest import NOW, new_thread, say


def _row(thread_id: int | None, user: str | None, purpose: str, tokens: int, cost: float | None, days: int) -> UsageRow:
    return UsageRow(
        thread_id=thread_id,
        user_id=user,
        purpose=purpose,
        model="openai/x",
        prompt_tokens=tokens,
        completion_tokens=tokens // 2,
        tokens_counted=cost is None,
        cost_usd=cost,
        created_utc=NOW - timedelta(days=days),
    )


async def test_usage_is_summed_per_day_user_and_thread_and_for_the_daily_cap(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    await say(storage, thread_id, "m1", "hi", author="alice")
    await storage.usage.record([])
    await storage.usage.record(
        [
            _row(thread_id, "alice", "answer", 100, 0.5, days=0),
            _row(thread_id, "alice", "summary", 40, None, days=0),
            _row(None, "bob", "answer", 10, 0.25, days=1),
        ]
    )
    assert await storage.usage.tokens_since(user_id="alice", since=NOW - timedelta(hours=1)) == 210
    assert await storage.usage.tokens_since(user_id="bob", since=NOW - timedelta(hours=1)) == 0
    assert await storage.usage.totals(by=Grouping.DAY) == [
        UsageTotal("2026-11-30", 1, 0, 10, 5, 0.25, 0),
        UsageTotal("2026-12-01", 1, 1, 140, 70, 0.5, 1),
    ]
    assert await storage.usage.totals(by=Grouping.USER, since=NOW - timedelta(days=3)) == [
        UsageTotal("alice Alice", 1, 1, 140, 70, 0.5, 1),
        UsageTotal("bob", 1, 0, 10, 5, 0.25, 0),
    ]
    assert [t.key for t in await storage.usage.totals(by=Grouping.THREAD)] == ["p:w:c:t", "(forgotten thread)"]
    assert await storage.usage.totals(by=Grouping.DAY, since=NOW + timedelta(days=1)) == []


async def test_the_probe_sees_a_writable_database_and_counts_waiting_threads(storage: Storage) -> None:
    assert await storage.probe.writable()
    assert await storage.probe.waiting_threads() == 0
    one, two = await new_thread(storage, "one"), await new_thread(storage, "two")
    await say(storage, one, "m1", "a")
    await say(storage, one, "m2", "b")
    await say(storage, two, "m3", "c")
    assert await storage.probe.waiting_threads() == 2
