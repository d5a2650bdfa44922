"""The journal says when a title was forgotten, and lets exactly one worker take the rename, on each backend.

A title blanked by a process that holds no platform connection (``forget --user``, retention) must still leave
the platform: the journal row carries ``title_forgotten`` for the router that follows it, and ``claim_title``
hands the rename to one worker (``bots/router/forgotten_titles.py``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from storage.backends import Storage
from tests.storage_contract.conftest import NOW, say
from tests.storage_contract.test_erasure_copies import titled_thread


async def _reply_to_all(storage: Storage, thread_id: int) -> None:
    waiting = [m.id for m in await storage.log.waiting(thread_id=thread_id)]
    await storage.log.record_reply(
        thread_id=thread_id, platform_message_id="r", author_name="bot", content="ok", answered_ids=waiting,
        now=NOW + timedelta(hours=1),
    )  # fmt: skip


@pytest.mark.parametrize("how", ["deleted", "edited", "forgot_user", "purged"])
async def test_the_journal_row_of_the_message_a_title_was_made_from_says_the_title_was_forgotten(
    storage: Storage, how: str
) -> None:
    titled = await titled_thread(storage)
    named = await titled_thread(storage, "named", from_message=None)  # the platform chose this one's name
    await say(storage, titled, "m2", "a later message", author="alice")
    for tid in (titled, named):
        for platform_id in ("m2", "m1") if tid == titled else ("m1",):
            if how == "deleted":
                await storage.erasures.delete_message(thread_id=tid, platform_message_id=platform_id, deleted_utc=NOW)
            elif how == "edited":
                await storage.erasures.edit_message(
                    thread_id=tid, platform_message_id=platform_id, content="x", edited_utc=NOW
                )
    if how == "forgot_user":
        await storage.erasures.forget_user(platform="p", user_id="alice", now=NOW)
    elif how == "purged":
        for tid in (titled, named):
            await _reply_to_all(storage, tid)
        assert await storage.erasures.purge_older_than(cutoff=NOW + timedelta(seconds=1), now=NOW) == 3
    journal = await storage.erasures.since(after_id=0)
    flagged = [(e.thread_id, e.title_forgotten) for e in journal]
    assert sorted(flagged) == sorted([(titled, False), (titled, True), (named, False)])
    [owed] = await storage.erasures.titles_owed()
    assert owed == next(e for e in journal if e.title_forgotten) and owed.thread_id == titled
    # Again, nothing left to forget: no new row, and no second title.
    if how == "forgot_user":
        await storage.erasures.forget_user(platform="p", user_id="alice", now=NOW)
    assert len(await storage.erasures.since(after_id=0)) == 3


async def test_a_forgotten_thread_owes_no_rename(storage: Storage) -> None:
    """Its messages, the title's words among them, are still on the platform: only the bot's memory went."""
    thread_id = await titled_thread(storage)
    await storage.erasures.forget_thread(thread_id=thread_id, now=NOW)
    [row] = await storage.erasures.since(after_id=0)
    assert not row.title_forgotten and await storage.erasures.titles_owed() == []


async def test_one_worker_takes_an_owed_rename_however_many_try_at_once(storage: Storage) -> None:
    thread_id = await titled_thread(storage)
    await storage.erasures.delete_message(thread_id=thread_id, platform_message_id="m1", deleted_utc=NOW)
    [owed] = await storage.erasures.titles_owed()
    claims = await asyncio.gather(
        *(storage.erasures.claim_title(erasure_id=owed.id, by=f"worker-{n}") for n in range(5))
    )
    assert sorted(claims) == [False, False, False, False, True]
    assert await storage.erasures.titles_owed() == []
    assert await storage.erasures.claim_title(erasure_id=owed.id, by="late") is False
    await say(storage, thread_id, "m2", "no title from this one")
    await storage.erasures.delete_message(thread_id=thread_id, platform_message_id="m2", deleted_utc=NOW)
    [_, untitled] = await storage.erasures.since(after_id=0)
    assert await storage.erasures.claim_title(erasure_id=untitled.id, by="anyone") is False  # it owes nothing


async def test_pruning_the_journal_keeps_an_owed_rename_until_its_own_cutoff(storage: Storage) -> None:
    owing = await titled_thread(storage)
    renamed = await titled_thread(storage, "renamed")
    for tid in (owing, renamed):
        await storage.erasures.delete_message(thread_id=tid, platform_message_id="m1", deleted_utc=NOW)
    await say(storage, owing, "m2", "untitled")
    await storage.erasures.delete_message(thread_id=owing, platform_message_id="m2", deleted_utc=NOW)
    renamed_row = next(e for e in await storage.erasures.titles_owed() if e.thread_id == renamed)
    assert await storage.erasures.claim_title(erasure_id=renamed_row.id, by="w")
    later = datetime.now(UTC) + timedelta(hours=2)
    assert await storage.erasures.prune_journal(before=later, owed_before=later - timedelta(days=30)) == 2
    assert [e.thread_id for e in await storage.erasures.titles_owed()] == [owing]
    assert await storage.erasures.prune_journal(before=later, owed_before=later) == 1
    assert await storage.erasures.since(after_id=0) == []
