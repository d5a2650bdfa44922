"""A card resolves only from its own thread: its buttons name it by number, so the place is checked too."""

from __future__ import annotations

from pathlib import Path

from bots.router.cards import STALE_CARD_NOTE
from bots.seam.messages import CardAction, CardClick
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM
from tests.router_harness import ALICE, db_rows, running_router, thread_key


async def test_a_click_from_another_thread_is_refused_and_the_card_waits_for_its_own(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with running_router(make_settings()) as bot:
        await bot.say("We chose Postgres.")
    async with running_router(make_settings()) as bot:
        await bot.say("What did we choose?")
        card_id = bot.outbox.cards_posted[-1].card_id
        elsewhere = CardClick(card_id, CardAction.FRESH, ALICE, thread=thread_key("another-thread"))
        assert (await bot.router.handle_click(elsewhere)).private_note == STALE_CARD_NOTE
        await bot.router.idle()
        assert [r["state"] for r in db_rows(db_path, "SELECT state FROM cards")] == ["pending"]
        assert bot.outbox.card_updates == []
        fake_llm.reply("Fresh: which choice?")
        here = CardClick(card_id, CardAction.FRESH, ALICE, thread=thread_key())
        assert (await bot.router.handle_click(here)).private_note is None
        await bot.router.idle()
        assert bot.outbox.replies_in(thread_key()) == ["Fresh: which choice?"]
    assert [r["state"] for r in db_rows(db_path, "SELECT state FROM cards")] == ["fresh"]
