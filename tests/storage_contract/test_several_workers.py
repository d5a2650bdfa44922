"""Several workers on one Postgres: each its own pool, the same invariants as one process on SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from bots.cli import forget_user
from bots.router.forgotten_titles import NEUTRAL_TITLE
from storage.backends import Storage, open_storage
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM
from tests.router_harness import message, running_router, thread_key
from tests.storage_contract.conftest import NOW, new_thread


@pytest.fixture
async def workers(postgres_url: str) -> AsyncIterator[list[Storage]]:
    """Three bundles on one database, opened (and so migrated) at the same time, as workers starting together."""
    contexts = [open_storage(postgres_url) for _ in range(3)]
    opened = await asyncio.gather(*(context.__aenter__() for context in contexts))
    try:
        yield list(opened)
    finally:
        for context in contexts:
            await context.__aexit__(None, None, None)


async def test_a_message_delivered_to_every_worker_is_logged_once(workers: list[Storage]) -> None:
    thread_ids = await asyncio.gather(*(new_thread(worker) for worker in workers))
    assert len(set(thread_ids)) == 1
    results = await asyncio.gather(
        *(
            worker.log.record_message(
                thread_id=thread_ids[0], platform_message_id=f"m{n}", author_id="u", author_name="U", role="user",
                content=f"hello {n}", sent_utc=NOW, now=NOW,
            )
            for n in range(50)
            for worker in workers
        )
    )  # fmt: skip
    assert sum(created for _, created in results) == 50
    assert len(await workers[0].log.all_messages(thread_id=thread_ids[0])) == 50
    deliveries = await asyncio.gather(
        *(w.events.record(platform="p", event_key="e1", message_id=results[0][0].id, now=NOW) for w in workers)
    )
    assert deliveries == [False, False, False]  # recorded once, not handled yet: each may ack


async def test_one_card_per_orphaning_and_one_click_wins_across_workers(workers: list[Storage]) -> None:
    thread_id = await new_thread(workers[0])
    opened = await asyncio.gather(*(w.cards.open_card(thread_id=thread_id, now=NOW) for w in workers * 3))
    assert len({card.id for card, _ in opened}) == 1 and sum(created for _, created in opened) == 1
    card_id = opened[0][0].id
    wins = await asyncio.gather(
        *(
            worker.cards.claim(card_id=card_id, state="fresh", by_id=f"u{i}", by_name=f"U{i}", now=NOW)
            for i, worker in enumerate(workers * 3)
        )
    )
    assert wins.count(True) == 1


async def test_an_erasure_by_one_worker_reaches_the_journal_every_worker_follows(workers: list[Storage]) -> None:
    thread_id = await new_thread(workers[0])
    for n in range(9):
        await workers[0].log.record_message(
            thread_id=thread_id, platform_message_id=f"m{n}", author_id="u", author_name="U", role="user",
            content=f"text {n}", sent_utc=NOW, now=NOW,
        )  # fmt: skip
    await asyncio.gather(
        *(
            workers[n % 3].erasures.delete_message(thread_id=thread_id, platform_message_id=f"m{n}", deleted_utc=NOW)
            for n in range(9)
        )
    )
    journals = [[e.id for e in await w.erasures.since(after_id=0)] for w in workers]
    assert journals[0] == journals[1] == journals[2] and len(journals[0]) == 9 == len(set(journals[0]))


async def test_a_forgotten_title_is_renamed_by_one_worker_of_all_that_follow_the_journal(
    workers: list[Storage],
) -> None:
    """``bots/router/forgotten_titles.py``: every worker sees the row; the claim lets exactly one rename."""
    thread_id = await workers[0].log.ensure_thread(
        platform="p", workspace="w", channel="c", thread="t", title="secret words", now=NOW, title_message_id="m1"
    )
    await workers[0].log.record_message(
        thread_id=thread_id, platform_message_id="m1", author_id="u", author_name="U", role="user",
        content="secret words", sent_utc=NOW, now=NOW,
    )  # fmt: skip
    await workers[1].erasures.forget_user(platform="p", user_id="u", now=NOW)
    owed = [await w.erasures.titles_owed() for w in workers]
    assert owed[0] == owed[1] == owed[2] and len(owed[0]) == 1 and owed[0][0].title_forgotten
    claims = await asyncio.gather(
        *(w.erasures.claim_title(erasure_id=owed[0][0].id, by=f"worker-{n}") for n, w in enumerate(workers * 3))
    )
    assert claims.count(True) == 1 and await workers[2].erasures.titles_owed() == []


async def test_of_two_routers_following_the_journal_one_renames_a_title_forget_user_took(
    make_settings: MakeSettings, fake_llm: FakeLLM, postgres_url: str
) -> None:
    """Two workers, each with the platform connected and following the journal: the title goes once."""
    fake_llm.reply_with(lambda body: "Okay.")
    settings = make_settings(database_url=postgres_url)
    async with running_router(settings) as first, running_router(settings) as second:
        mention = replace(message("my secret plan"), thread_title="my secret plan", title_from_text=True)
        await first.router.handle_message(mention)
        await first.router.idle()
        assert await forget_user(settings, "test:U-alice") == 0
        for bot in (first, second):  # each applies the row now, as its poll would
            await bot.router._follower.catch_up()
            await bot.router.idle()
        renames = first.outbox.renames + second.outbox.renames
    assert renames == [(thread_key(), NEUTRAL_TITLE)]
