"""Forgetting's contract: rows, summaries, trail and journal change together; nothing readable is left behind."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from storage.backends import Backend, Storage
from storage.records import KIND_DELETED, KIND_EDITED, KIND_THREAD, UserErasure
from tests.storage_contract.conftest import NOW, new_thread, say


async def test_a_deletion_blanks_the_row_keeps_a_tombstone_and_is_journaled(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    message_id = await say(storage, thread_id, "m1", "delete me")
    assert await storage.erasures.latest_id() == 0
    erased = await storage.erasures.delete_message(thread_id=thread_id, platform_message_id="m1", deleted_utc=NOW)
    assert erased is not None and erased.message_id == message_id and not erased.title_forgotten
    assert await storage.erasures.delete_message(thread_id=thread_id, platform_message_id="m1", deleted_utc=NOW) is None
    [row] = await storage.log.all_messages(thread_id=thread_id)
    assert (row.content, row.attachments, row.deleted, row.reply_state) == ("", [], True, "answered")
    again, created = await storage.log.record_message(
        thread_id=thread_id, platform_message_id="m1", author_id="u", author_name="U", role="user",
        content="delete me", sent_utc=NOW, now=NOW,
    )  # fmt: skip
    assert not created and again.content == ""  # a redelivery cannot log the text again
    [entry] = await storage.erasures.since(after_id=0)
    assert (entry.thread_id, entry.message_id, entry.kind) == (thread_id, message_id, KIND_DELETED)
    assert await storage.erasures.latest_id(thread_id=thread_id) == entry.id


async def test_an_edit_stores_the_new_text_once_and_an_unchanged_one_is_no_edit(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    message_id = await say(storage, thread_id, "m1", "first")
    edit = storage.erasures.edit_message
    edited = await edit(thread_id=thread_id, platform_message_id="m1", content="second", edited_utc=NOW)
    assert edited is not None and edited.message_id == message_id
    assert await edit(thread_id=thread_id, platform_message_id="m1", content="second", edited_utc=NOW) is None
    assert await edit(thread_id=thread_id, platform_message_id="nope", content="x", edited_utc=NOW) is None
    [row] = await storage.log.all_messages(thread_id=thread_id)
    assert (row.content, row.edited) == ("second", True)
    assert [e.kind for e in await storage.erasures.since(after_id=0)] == [KIND_EDITED]


async def test_forgetting_a_thread_removes_everything_of_it_but_its_journal_row(storage: Storage) -> None:
    gone, kept = await new_thread(storage, "gone"), await new_thread(storage, "kept")
    first = await say(storage, gone, "m1", "one")
    await say(storage, gone, "m2", "two")
    await say(storage, kept, "m3", "three")
    await storage.cards.open_card(thread_id=gone, now=NOW)
    await storage.events.record(platform="p", event_key="e1", message_id=first, now=NOW)
    await storage.sessions.record(thread_id=gone, origin="fresh", model="m", started_utc=NOW)
    assert await storage.erasures.forget_thread(thread_id=gone, now=NOW) == 2
    assert await storage.log.thread(thread_id=gone) is None
    assert await storage.log.all_messages(thread_id=gone) == []
    assert await storage.cards.open_card_for(thread_id=gone) is None
    assert [e.kind for e in await storage.erasures.since(after_id=0)] == [KIND_THREAD]
    assert [m.content for m in await storage.log.all_messages(thread_id=kept)] == ["three"]


async def test_forgetting_a_thread_in_it_keeps_a_bare_row_under_a_new_id(storage: Storage) -> None:
    """The in-thread forget: the bot still takes part in the thread, which holds nothing and no old id."""
    older = await new_thread(storage, "older")
    # The newest thread, whose id a plain SQLite rowid would hand straight back; its title is content too.
    gone = await storage.log.ensure_thread(
        platform="p", workspace="w", channel="c", thread="gone", title="Secret plan", now=NOW
    )
    await say(storage, gone, "m1", "a secret plan")
    await storage.sessions.record(thread_id=gone, origin="fresh", model="m", started_utc=NOW)
    assert await storage.erasures.forget_thread(thread_id=gone, now=NOW, keep_tracking=True) == 1
    assert await storage.log.thread(thread_id=gone) is None
    again = await storage.log.find_thread(platform="p", workspace="w", channel="c", thread="gone")
    assert again is not None and again > gone
    record = await storage.log.thread(thread_id=again)
    assert record is not None and record.title is None
    assert await storage.log.all_messages(thread_id=again) == []
    assert [e.thread_id for e in await storage.erasures.since(after_id=0)] == [gone]
    assert await storage.log.find_thread(platform="p", workspace="w", channel="c", thread="older") == older
    assert await storage.erasures.forget_thread(thread_id=again, now=NOW) == 0  # the CLI: gone entirely
    assert await storage.log.find_thread(platform="p", workspace="w", channel="c", thread="gone") is None


async def test_forget_user_erases_one_person_on_one_platform_in_every_thread(storage: Storage) -> None:
    one, two = await new_thread(storage, "one"), await new_thread(storage, "two")
    elsewhere = await new_thread(storage, "three", platform="other")
    await say(storage, one, "m1", "alice one", author="alice")
    await say(storage, one, "m2", "bob one", author="bob")
    await say(storage, two, "m3", "alice two", author="alice")
    await say(storage, two, "m4", "alice three", author="alice")
    await say(storage, elsewhere, "m5", "alice elsewhere", author="alice")
    erased = await storage.erasures.forget_user(platform="p", user_id="alice", now=NOW)
    assert erased == [UserErasure(one, "one", None, 1), UserErasure(two, "two", None, 2)]
    assert [(m.content, m.author_id) for m in await storage.log.all_messages(thread_id=one)] == [
        ("", ""),
        ("bob one", "bob"),
    ]
    assert [m.content for m in await storage.log.all_messages(thread_id=elsewhere)] == ["alice elsewhere"]
    assert await storage.erasures.forget_user(platform="p", user_id="nobody", now=NOW) == []


async def test_retention_purges_old_messages_but_never_one_still_waiting(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    long_ago = NOW - timedelta(days=40)
    answered = await say(storage, thread_id, "m1", "old answered", sent=long_ago)
    await say(storage, thread_id, "m2", "old waiting", sent=long_ago)
    await say(storage, thread_id, "m3", "recent", sent=NOW)
    await storage.log.record_reply(
        thread_id=thread_id, platform_message_id="r1", author_name="bot", content="reply", answered_ids=[answered],
        now=NOW,
    )  # fmt: skip
    assert await storage.erasures.purge_older_than(cutoff=NOW - timedelta(days=30), now=NOW) == 1
    assert [m.content for m in await storage.log.all_messages(thread_id=thread_id)] == [
        "old waiting",
        "recent",
        "reply",
    ]
    assert await storage.erasures.purge_older_than(cutoff=NOW - timedelta(days=30), now=NOW) == 0
    assert await storage.erasures.prune_journal(before=NOW + timedelta(seconds=1)) == 0  # stamped now, not NOW
    assert await storage.erasures.prune_journal(before=NOW + timedelta(days=36500)) == 1


async def test_concurrent_erasures_journal_in_the_order_they_commit(storage: Storage) -> None:
    """A router reads the journal as "ids after the last seen": a row must never appear below one already read."""
    thread_id = await new_thread(storage)
    for i in range(20):
        await say(storage, thread_id, f"m{i}", f"text {i}")
    seen: list[int] = []

    async def follow() -> None:
        while len(seen) < 20:
            seen.extend(e.id for e in await storage.erasures.since(after_id=seen[-1] if seen else 0))
            await asyncio.sleep(0)

    follower = asyncio.create_task(follow())
    await asyncio.gather(
        *(
            storage.erasures.delete_message(thread_id=thread_id, platform_message_id=f"m{i}", deleted_utc=NOW)
            for i in range(20)
        )
    )
    await asyncio.wait_for(follower, timeout=30)
    assert sorted(seen) == seen and len(set(seen)) == 20


@pytest.mark.parametrize("how", ["deleted", "edited", "forgotten"])
async def test_no_row_version_holds_forgotten_text_after_an_erasure(storage: Storage, how: str) -> None:
    """Postgres: VACUUM ran, so no live or dead tuple of any table keeps the text (SQLite: test_forgetting)."""
    if storage.backend is not Backend.POSTGRES:
        pytest.skip("SQLite's files are checked byte by byte in tests/test_forgetting.py")
    word = "zqxjvqplkw"
    thread_id = await new_thread(storage)
    for i in range(30):
        await say(storage, thread_id, f"f{i}", f"filler message {i} " * 20)
    written = await say(storage, thread_id, "secret", f"please forget {word} soon")
    await storage.sessions.record_with_summary(
        thread_id=thread_id, model="m", started_utc=NOW, summary=f"they said {word}",
        summary_through_message_id=written, erasures_seen=0,
    )  # fmt: skip
    assert await _tuples_holding(storage, word) > 0
    if how == "deleted":
        await storage.erasures.delete_message(thread_id=thread_id, platform_message_id="secret", deleted_utc=NOW)
    elif how == "edited":
        await storage.erasures.edit_message(
            thread_id=thread_id, platform_message_id="secret", content="x", edited_utc=NOW
        )
    else:
        await storage.erasures.forget_thread(thread_id=thread_id, now=NOW)
    assert await _tuples_holding(storage, word) == 0


async def _tuples_holding(storage: Storage, word: str) -> int:
    """Row versions (live or dead, per pageinspect) of the erased tables whose data contains ``word``."""
    from storage.postgres.db import ERASED_TABLES, PostgresDatabase

    assert isinstance(storage.database, PostgresDatabase)
    found = 0
    async with storage.database.connection() as connection:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
        for table in ERASED_TABLES:
            cursor = await connection.execute(
                "SELECT COUNT(*) AS n FROM generate_series(0, pg_relation_size(%s) / 8192 - 1) AS page, "
                "heap_page_items(get_raw_page(%s, page::int)) AS item WHERE position(%s::bytea IN item.t_data) > 0",
                (table, table, word.encode()),
            )
            row = await cursor.fetchone()
            found += 0 if row is None else int(row["n"])
    return found
