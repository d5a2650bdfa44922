"""search_thread's index and the tool trail on a real SQLite file: what can be found, and what forgetting removes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from storage.db import open_database
from storage.erasure import ErasureStore
from storage.log import ThreadLog
from storage.migrations import migrate
from storage.search import ThreadSearch
from storage.trail import ApprovalStore, ToolTrail

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def test_search_finds_exact_text_in_its_own_thread_only_and_follows_edits_and_deletions(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "bot.db")
    await migrate(db)
    log, search, erasures = ThreadLog(db), ThreadSearch(db), ErasureStore(db)
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
    await db.close()


async def test_a_trail_entry_that_quoted_a_deleted_message_loses_its_excerpt(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "bot.db")
    await migrate(db)
    log, trail = ThreadLog(db), ToolTrail(db)
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
    for cites, excerpt in (((row.id,), "Alice: the code is 4417"), ((), "no matches")):
        await trail.record(
            thread_id=thread_id,
            after_message_id=row.id,
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
    await ErasureStore(db).delete_message(thread_id=thread_id, platform_message_id="m1", deleted_utc=NOW)
    excerpts = [e.result_excerpt for e in await trail.for_thread(thread_id=thread_id)]
    assert "4417" not in excerpts[0] and "removed" in excerpts[0]
    assert excerpts[1] == "no matches"
    await db.close()


async def test_only_the_first_decision_on_an_approval_counts_and_a_restart_expires_the_rest(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "bot.db")
    await migrate(db)
    thread_id = await ThreadLog(db).ensure_thread(
        platform="p", workspace="w", channel="c", thread="t", title=None, now=NOW
    )
    approvals = ApprovalStore(db)
    first = await approvals.open(thread_id=thread_id, tool="fs__write", arguments_preview="{}", now=NOW)
    second = await approvals.open(thread_id=thread_id, tool="fs__write", arguments_preview="{}", now=NOW)
    assert await approvals.decide(approval_id=first, state="approved", by_id="u1", by_name="Alice", now=NOW)
    assert not await approvals.decide(approval_id=first, state="denied", by_id="u2", by_name="Bob", now=NOW)
    assert await approvals.expire_pending(now=NOW) == 1
    record = await approvals.get(approval_id=second)
    assert record is not None and record.state == "expired"
    await db.close()
