"""Cards, sessions and deliveries: one card per orphaning, the first click wins, summaries that an erasure spoils."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from storage.backends import Storage
from storage.records import CardRecord, StoredSummary
from tests.storage_contract.conftest import NOW, new_thread, say


async def test_only_one_open_card_per_thread_and_only_one_click_wins(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    opened = await asyncio.gather(*(storage.cards.open_card(thread_id=thread_id, now=NOW) for _ in range(5)))
    assert len({card.id for card, _ in opened}) == 1
    assert [created for _, created in opened].count(True) == 1
    card_id = opened[0][0].id
    wins = await asyncio.gather(
        *(
            storage.cards.claim(card_id=card_id, state="catching_up", by_id=f"u{i}", by_name=f"U{i}", now=NOW)
            for i in range(5)
        )
    )
    assert wins.count(True) == 1
    card = await storage.cards.get(card_id=card_id)
    assert card is not None and card.state == "catching_up" and card.resolved_by_name is not None
    assert await storage.cards.open_card_for(thread_id=thread_id) == card  # catching up is still open
    await storage.cards.finish(card_id=card_id, state="caught_up", now=NOW)
    assert await storage.cards.open_card_for(thread_id=thread_id) is None
    newer, created = await storage.cards.open_card(thread_id=thread_id, now=NOW)  # the next orphaning
    assert created and newer.id > card_id


async def test_a_discarded_cards_id_is_never_given_to_the_next_card(storage: Storage) -> None:
    first, second = await new_thread(storage, "t1"), await new_thread(storage, "t2")
    discarded, _ = await storage.cards.open_card(thread_id=first, now=NOW)
    await storage.cards.discard(card_id=discarded.id)  # its post timed out, but its buttons may be on the platform
    card, _ = await storage.cards.open_card(thread_id=second, now=NOW)
    assert card.id != discarded.id
    assert await storage.cards.get(card_id=discarded.id) is None


async def test_cards_left_catching_up_by_a_dead_process_are_clickable_again(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    card, _ = await storage.cards.open_card(thread_id=thread_id, now=NOW)
    await storage.cards.set_message_id(card_id=card.id, card_message_id="msg-1")
    assert await storage.cards.claim(card_id=card.id, state="catching_up", by_id="u", by_name="U", now=NOW)
    assert await storage.cards.reopen_interrupted() == [CardRecord(card.id, thread_id, "msg-1", "catching_up", "U")]
    assert await storage.cards.get(card_id=card.id) == CardRecord(card.id, thread_id, "msg-1", "pending", None)
    assert await storage.cards.reopen_interrupted() == []
    assert await storage.cards.claim(card_id=card.id, state="fresh", by_id="v", by_name="V", now=NOW)
    await storage.cards.reopen(card_id=card.id)
    assert await storage.cards.get(card_id=card.id) == CardRecord(card.id, thread_id, "msg-1", "pending", None)


async def test_a_summary_is_not_stored_when_the_thread_forgot_something_meanwhile(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    first = await say(storage, thread_id, "m1", "one")
    second = await say(storage, thread_id, "m2", "two")
    fresh = await storage.sessions.record(thread_id=thread_id, origin="fresh", model="m", started_utc=NOW)
    assert fresh > 0 and await storage.sessions.latest_summary(thread_id=thread_id) is None
    seen = await storage.erasures.latest_id(thread_id=thread_id)
    kept = await storage.sessions.record_with_summary(
        thread_id=thread_id, model="m", started_utc=NOW, summary="S1", summary_through_message_id=first,
        erasures_seen=seen,
    )  # fmt: skip
    assert kept is not None
    assert await storage.sessions.latest_summary(thread_id=thread_id) == StoredSummary("S1", first)
    assert await storage.sessions.replace_summary(
        session_id=kept, thread_id=thread_id, summary="S2", through_message_id=second, erasures_seen=seen
    )
    assert await storage.sessions.latest_summary(thread_id=thread_id) == StoredSummary("S2", second)
    await storage.erasures.delete_message(thread_id=thread_id, platform_message_id="m2", deleted_utc=NOW)
    assert await storage.sessions.latest_summary(thread_id=thread_id) is None  # it covered m2: invalidated
    stale = await storage.sessions.record_with_summary(
        thread_id=thread_id, model="m", started_utc=NOW, summary="S3", summary_through_message_id=first,
        erasures_seen=seen,
    )  # fmt: skip
    assert stale is None
    assert not await storage.sessions.replace_summary(
        session_id=kept, thread_id=thread_id, summary="S4", through_message_id=first, erasures_seen=seen
    )


async def test_old_deliveries_are_pruned_once_handled_or_no_longer_waited_for(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    answered = await say(storage, thread_id, "m1", "answered")
    waiting = await say(storage, thread_id, "m2", "still waiting")
    old, recent = NOW - timedelta(days=2), NOW
    for key, message_id, when in (("e1", answered, old), ("e2", waiting, old), ("e3", answered, recent)):
        assert not await storage.events.record(platform="p", event_key=key, message_id=message_id, now=when)
    await storage.events.mark_handled(message_ids=[answered], now=NOW)
    await storage.events.mark_handled(message_ids=[], now=NOW)
    assert await storage.events.prune(received_before=NOW - timedelta(days=1)) == 1  # e1 only
    assert await storage.events.record(platform="p", event_key="e3", message_id=answered, now=NOW)
    assert not await storage.events.record(platform="p", event_key="e2", message_id=waiting, now=NOW)
