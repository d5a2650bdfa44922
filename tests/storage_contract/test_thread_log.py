"""ThreadLog's contract: each message once, its reply state, what a transcript shows, a forgotten thread."""

from __future__ import annotations

import asyncio

import pytest

from storage.backends import Storage
from storage.leases import LeaseLost, thread_resource
from storage.records import ThreadGone
from tests.storage_contract.conftest import NOW, new_thread, say


async def test_logging_the_same_message_twice_keeps_one_row_even_concurrently(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    results = await asyncio.gather(
        *(
            storage.log.record_message(
                thread_id=thread_id,
                platform_message_id="m1",
                author_id="u",
                author_name="U",
                role="user",
                content="hi",
                sent_utc=NOW,
                attachments=[{"name": "a.png"}],
                now=NOW,
            )
            for _ in range(10)
        )
    )
    assert [created for _, created in results].count(True) == 1
    [row] = await storage.log.all_messages(thread_id=thread_id)
    assert (row.content, row.attachments, row.reply_state, row.sent_utc) == (
        "hi",
        [{"name": "a.png"}],
        "waiting",
        "2026-12-01T09:00:00+00:00",
    )
    assert {r.id for r, _ in results} == {row.id}


async def test_the_same_thread_key_is_one_row_and_can_be_found_by_name(storage: Storage) -> None:
    ids = await asyncio.gather(*(new_thread(storage, "t1") for _ in range(5)))
    assert len(set(ids)) == 1
    assert await storage.log.find_thread(platform="p", workspace="w", channel="c", thread="t1") == ids[0]
    assert await storage.log.find_thread(platform="p", workspace="w", channel="c", thread="nope") is None
    [record] = await storage.log.find_threads(name="t1")
    assert (record.id, record.platform, record.title, record.created_utc) == (ids[0], "p", None, NOW.isoformat())
    assert await storage.log.thread(thread_id=ids[0]) == record


async def test_the_threads_of_a_channel_holding_a_message_are_found_by_its_platform_id(storage: Storage) -> None:
    """A channel message logged in two threads (two reply chains through it) is found in both, not elsewhere."""
    first, second = await new_thread(storage, "t1"), await new_thread(storage, "t2")
    other_channel = await storage.log.ensure_thread(
        platform="p", workspace="w", channel="elsewhere", thread="t3", title=None, now=NOW
    )
    other_platform = await new_thread(storage, "t4", platform="q")
    for thread_id in (first, second, other_channel, other_platform):
        await say(storage, thread_id, "m1", "the plan")
    await say(storage, first, "m2", "only here")

    async def holding(message: str, *, channel: str = "c") -> list[tuple[int, str, str]]:
        found = await storage.log.threads_holding(
            platform="p", workspace="w", channel=channel, platform_message_id=message
        )
        return [(t.id, t.channel, t.thread) for t in found]

    assert await holding("m1") == [(first, "c", "t1"), (second, "c", "t2")]
    assert await holding("m2") == [(first, "c", "t1")] and await holding("m3") == []
    assert await holding("m1", channel="elsewhere") == [(other_channel, "elsewhere", "t3")]


async def test_a_reply_marks_what_it_answered_and_their_deliveries_handled(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    first = await say(storage, thread_id, "m1", "question one")
    second = await say(storage, thread_id, "m2", "question two")
    assert not await storage.events.record(platform="p", event_key="e1", message_id=first, now=NOW)
    assert [t.id for t in await storage.log.threads_with_waiting(platform="p")] == [thread_id]
    assert await storage.log.threads_with_waiting(platform="other") == []
    assert [m.id for m in await storage.log.waiting(thread_id=thread_id)] == [first, second]
    assert await storage.log.transcript(thread_id=thread_id) == []  # nothing answered yet
    reply = await storage.log.record_reply(
        thread_id=thread_id,
        platform_message_id="r1",
        author_name="bot",
        content="answer one",
        answered_ids=[first],
        now=NOW,
    )
    assert reply is not None
    assert [m.id for m in await storage.log.waiting(thread_id=thread_id)] == [second]
    assert [m.id for m in await storage.log.transcript(thread_id=thread_id)] == [first, reply]
    assert [m.id for m in await storage.log.transcript(thread_id=thread_id, after_id=first)] == [reply]
    assert [m.id for m in await storage.log.transcript(thread_id=thread_id, through_id=first)] == [first]
    assert await storage.events.record(platform="p", event_key="e1", message_id=first, now=NOW)  # a redelivery
    assert await storage.log.has_messages_before(thread_id=thread_id, message_id=second)
    assert not await storage.log.has_messages_before(thread_id=thread_id, message_id=first)


async def test_the_latest_platform_id_skips_provisional_ones_until_the_post_names_them(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    assert await storage.log.latest_platform_id(thread_id=thread_id) is None
    await say(storage, thread_id, "m1", "hello")
    await say(storage, thread_id, "local-123", "posting...", author="assistant", role="assistant")
    assert await storage.log.latest_platform_id(thread_id=thread_id) == "m1"
    await storage.log.set_platform_id(thread_id=thread_id, old="local-123", new="m2")
    assert await storage.log.latest_platform_id(thread_id=thread_id) == "m2"
    assert await storage.log.latest_platform_id(thread_id=thread_id, role="user") == "m1"


async def test_a_retry_and_a_posted_replys_id_carry_the_fence_and_a_stale_one_writes_nothing(storage: Storage) -> None:
    """Several workers (Postgres): after a takeover, the old owner can neither take an answer back nor name one.
    SQLite's one worker owns every thread, so a fence there is accepted as it is."""
    thread_id = await new_thread(storage)
    asked = await say(storage, thread_id, "m1", "which queue?")
    reply = await storage.log.record_reply(
        thread_id=thread_id, platform_message_id="local-1", author_name="bot", content="SKIP LOCKED.",
        answered_ids=[asked], now=NOW,
    )  # fmt: skip
    assert reply is not None
    resource = thread_resource(thread_id)
    stale = await storage.leases.acquire(resource=resource, holder="worker-a", ttl_s=30)
    assert stale is not None
    await storage.leases.release(holder="worker-a")  # A stalls; B takes the thread
    fresh = await storage.leases.acquire(resource=resource, holder="worker-b", ttl_s=30)
    assert fresh is not None
    if storage.leases.shared:
        with pytest.raises(LeaseLost):
            await storage.log.set_platform_id(thread_id=thread_id, old="local-1", new="p1", fence=stale)
        with pytest.raises(LeaseLost):
            await storage.log.replace_reply(
                thread_id=thread_id, reply_id=reply, answered_ids=[asked], now=NOW, fence=stale
            )
        rows = await storage.log.all_messages(thread_id=thread_id)
        assert [(m.platform_message_id, m.replaced) for m in rows] == [("m1", False), ("local-1", False)]
        assert await storage.log.waiting(thread_id=thread_id) == []
    await storage.log.set_platform_id(thread_id=thread_id, old="local-1", new="p1", fence=fresh)
    assert await storage.log.replace_reply(
        thread_id=thread_id, reply_id=reply, answered_ids=[asked], now=NOW, fence=fresh
    )
    assert [m.id for m in await storage.log.waiting(thread_id=thread_id)] == [asked]
    assert await storage.log.latest_platform_id(thread_id=thread_id) == "p1"


async def test_visible_returns_the_current_text_of_what_is_still_there(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    ids = [await say(storage, thread_id, f"m{i}", f"text {i}") for i in range(3)]
    await storage.erasures.delete_message(thread_id=thread_id, platform_message_id="m1", deleted_utc=NOW)
    await storage.erasures.edit_message(thread_id=thread_id, platform_message_id="m2", content="new", edited_utc=NOW)
    visible = await storage.log.visible(thread_id=thread_id, ids=list(reversed(ids)))
    assert [(m.id, m.content, m.edited) for m in visible] == [(ids[0], "text 0", False), (ids[2], "new", True)]
    other = await new_thread(storage, "other")
    assert await storage.log.visible(thread_id=other, ids=ids) == []


async def test_a_message_for_a_forgotten_thread_fails_alone_with_thread_gone(storage: Storage) -> None:
    gone, kept = await new_thread(storage, "gone"), await new_thread(storage, "kept")
    await storage.erasures.forget_thread(thread_id=gone, now=NOW)
    results = await asyncio.gather(
        say(storage, gone, "m1", "too late"), say(storage, kept, "m2", "fine"), return_exceptions=True
    )
    assert isinstance(results[0], ThreadGone)
    assert isinstance(results[1], int)
    with pytest.raises(ThreadGone):
        await say(storage, gone, "m3", "still too late")
    assert [m.content for m in await storage.log.all_messages(thread_id=kept)] == ["fine"]
