"""search_thread's index and the tool trail on each backend: what can be found, and what forgetting removes."""

from __future__ import annotations

import asyncio

from storage.backends import Storage
from tests.storage_contract.conftest import NOW


async def test_search_finds_exact_text_in_its_own_thread_only_and_follows_edits_and_deletions(storage: Storage) -> None:
    log, search, erasures = storage.log, storage.search, storage.erasures
    one = await log.ensure_thread(platform="p", workspace="w", channel="c", thread="one", title=None, now=NOW)
    two = await log.ensure_thread(platform="p", workspace="w", channel="c", thread="two", title=None, now=NOW)
    texts = [
        (one, "m1", "The staging database lives on host db-7, port 5433."),
        (one, "m2", "Lunch is at noon."),
        (one, "m3", "The staging password is temporary."),
        (two, "m4", "Our staging database is elsewhere entirely."),
    ]
    for thread_id, platform_id, text in texts:
        await log.record_message(
            thread_id=thread_id,
            platform_message_id=platform_id,
            author_id="u",
            author_name="Alice",
            role="user",
            content=text,
            sent_utc=NOW,
            now=NOW,
        )
    hits = await search.search(thread_id=one, query="staging database port", limit=5)
    assert hits[0].content == "The staging database lives on host db-7, port 5433."
    assert all("elsewhere" not in h.content for h in hits)  # never another thread
    assert await search.search(thread_id=one, query='") OR content:* NEAR(', limit=5) == []  # syntax is inert
    await erasures.delete_message(thread_id=one, platform_message_id="m1", deleted_utc=NOW)
    await erasures.edit_message(thread_id=one, platform_message_id="m2", content="Lunch moved to 1 pm.", edited_utc=NOW)
    assert [h.content for h in await search.search(thread_id=one, query="staging", limit=5)] == [
        "The staging password is temporary."
    ]
    assert await search.search(thread_id=one, query="noon", limit=5) == []
    assert [h.content for h in await search.search(thread_id=one, query="lunch", limit=5)] == ["Lunch moved to 1 pm."]


async def test_a_trail_entry_that_quoted_a_deleted_message_loses_its_excerpt(storage: Storage) -> None:
    log, trail = storage.log, storage.trail
    thread_id = await log.ensure_thread(platform="p", workspace="w", channel="c", thread="t", title=None, now=NOW)
    row, _ = await log.record_message(
        thread_id=thread_id,
        platform_message_id="m1",
        author_id="u",
        author_name="Alice",
        role="user",
        content="the code is 4417",
        sent_utc=NOW,
        now=NOW,
    )
    await log.record_reply(
        thread_id=thread_id, platform_message_id="r1", author_name="bot", content="noted", answered_ids=[row.id],
        now=NOW,
    )  # fmt: skip
    later, _ = await log.record_message(  # a later question's turn: only what quoted m1 goes with it
        thread_id=thread_id, platform_message_id="m2", author_id="u", author_name="Alice", role="user",
        content="what was the code?", sent_utc=NOW, now=NOW,
    )  # fmt: skip
    for cites, excerpt in (((row.id,), "Alice: the code is 4417"), ((), "no matches")):
        await trail.record(
            thread_id=thread_id,
            after_message_id=later.id,
            call_id="c1",
            tool="search_thread",
            arguments={"query": "code"},
            result_excerpt=excerpt,
            is_error=False,
            duration_ms=3,
            approval="not_needed",
            decided_by=None,
            cites=cites,
            now=NOW,
        )
    await storage.erasures.delete_message(thread_id=thread_id, platform_message_id="m1", deleted_utc=NOW)
    excerpts = [e.result_excerpt for e in await trail.for_thread(thread_id=thread_id)]
    assert "4417" not in excerpts[0] and "removed" in excerpts[0]
    assert excerpts[1] == "no matches"


async def test_only_the_first_decision_on_an_approval_counts_and_a_restart_expires_the_rest(storage: Storage) -> None:
    thread_id = await storage.log.ensure_thread(
        platform="p", workspace="w", channel="c", thread="t", title=None, now=NOW
    )
    approvals = storage.approvals
    first = await approvals.open(thread_id=thread_id, tool="fs__write", arguments_preview="{}", now=NOW)
    second = await approvals.open(thread_id=thread_id, tool="fs__write", arguments_preview="{}", now=NOW)
    assert await approvals.decide(approval_id=first, state="approved", by_id="u1", by_name="Alice", now=NOW)
    assert not await approvals.decide(approval_id=first, state="denied", by_id="u2", by_name="Bob", now=NOW)
    assert await approvals.expire_pending(now=NOW) == 1
    record = await approvals.get(approval_id=second)
    assert record is not None and record.state == "expired"


async def test_an_approvals_timeout_counts_by_the_database_clock_whatever_the_askers_clock_says(
    storage: Storage,
) -> None:
    """Workers' clocks may disagree; the database's is the one they share. The asker's clock here is a week off
    (NOW is in the past): the approval's age and whether a click came in time are read from the database's."""
    thread_id = await storage.log.ensure_thread(
        platform="p", workspace="w", channel="c", thread="t", title=None, now=NOW
    )
    approvals = storage.approvals
    fresh = await approvals.open(thread_id=thread_id, tool="fs__write", arguments_preview="{}", now=NOW)
    record = await approvals.get(approval_id=fresh)
    assert record is not None and record.age_s is not None and 0 <= record.age_s < 5
    assert await approvals.decide(approval_id=fresh, state="approved", by_id="u", by_name="A", now=NOW, within_s=60)
    late = await approvals.open(thread_id=thread_id, tool="fs__write", arguments_preview="{}", now=NOW)
    await asyncio.sleep(0.3)
    assert not await approvals.decide(approval_id=late, state="approved", by_id="u", by_name="A", now=NOW, within_s=0.2)
    record = await approvals.get(approval_id=late)
    assert record is not None and record.state == "pending" and record.age_s is not None and record.age_s >= 0.2
    assert await approvals.decide(approval_id=late, state="timed_out", by_id=None, by_name=None, now=NOW)


async def test_search_words_with_underscores_and_digits_match_only_themselves(storage: Storage) -> None:
    thread_id = await storage.log.ensure_thread(
        platform="p", workspace="w", channel="c", thread="t", title=None, now=NOW
    )
    for platform_id, text in (("m1", "rename it to snake_case please"), ("m2", "snakeXcase is wrong"), ("m3", "v2")):
        await storage.log.record_message(
            thread_id=thread_id, platform_message_id=platform_id, author_id="u", author_name="A", role="user",
            content=text, sent_utc=NOW, now=NOW,
        )  # fmt: skip
    assert [h.content for h in await storage.search.search(thread_id=thread_id, query="snake_case", limit=5)] == [
        "rename it to snake_case please"
    ]
    assert [h.content for h in await storage.search.search(thread_id=thread_id, query="V2?", limit=5)] == ["v2"]
    assert await storage.search.search(thread_id=thread_id, query="% _ \\", limit=5) == []
