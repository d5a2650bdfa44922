"""A card an earlier run recorded but never stored the message of: found in the thread, or posted once.

A run killed after Discord accepted the card but before its id was stored leaves a card row without a message
id; the killed moment is reproduced by clearing that column between runs (the fake's faults refuse a call,
they never accept one and lose the answer). The next run finds the card in the thread's recent history
instead of posting a second one, and its buttons still work.
"""

from __future__ import annotations

from pathlib import Path

from tests.discord.conftest import DiscordBotFactory, button, buttons, open_thread, settle
from tests.fakes.discord import FakeDiscord
from tests.fakes.llm import FakeLLM
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows, db_write


def card_searches(fake: FakeDiscord, thread: str) -> int:
    """Reads of the thread's latest messages (a backfill reads those after a known one instead)."""
    reads = fake.calls_to("GET", rf"/channels/{thread}/messages")
    return len([r for r in reads if "after" not in r.query and "before" not in r.query])


async def test_a_card_posted_by_a_run_that_died_before_storing_its_id_is_found_not_posted_again(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "we ship on the 14th")
    async with discord_bot() as bot:
        await fake_discord.user_says("when do we ship?", channel_id=thread)
        await wait_until(lambda: len(fake_discord.cards_in(thread)) == 1)
        await settle(bot)
    card = fake_discord.cards_in(thread)[0]
    assert db_write(db_path, "UPDATE cards SET card_message_id = NULL") == 1  # killed before the id was stored
    async with discord_bot() as bot:  # the start-up resume takes the waiting question, with its card
        await wait_until(lambda: db_rows(db_path, "SELECT card_message_id FROM cards")[0][0] == card["id"])
        assert len(fake_discord.cards_in(thread)) == 1
        assert card_searches(fake_discord, thread) == 1
        fake_llm.reply("SUMMARY: shipping on the 14th.")
        fake_llm.reply("On the 14th.")
        await fake_discord.click(button(card, "catch_up"), message=card)
        await wait_until(lambda: "On the 14th." in fake_discord.texts_in(thread))
        await settle(bot)
    assert len(fake_discord.cards_in(thread)) == 1
    card = fake_discord.messages[card["id"]]
    assert buttons(card) == [] and "Caught up" in card["content"]
    assert db_rows(db_path, "SELECT state FROM cards")[0][0] == "caught_up"


async def test_a_card_recorded_but_never_posted_is_posted_once_when_the_thread_speaks(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "the password hint is PELICAN")
    thread_id = db_rows(db_path, "SELECT id FROM threads")[0][0]
    db_write(  # killed between recording the card and posting it
        db_path,
        "INSERT INTO cards (thread_id, state, created_utc) VALUES (?, 'pending', '2026-01-01T00:00:00+00:00')",
        (thread_id,),
    )
    card_id = db_rows(db_path, "SELECT id FROM cards")[0][0]
    async with discord_bot() as bot:
        await fake_discord.user_says("still there?", channel_id=thread)
        await wait_until(lambda: len(fake_discord.cards_in(thread)) == 1)
        await fake_discord.user_says("hello?", channel_id=thread)
        await settle(bot)
        assert len(fake_discord.cards_in(thread)) == 1
        assert card_searches(fake_discord, thread) == 1, "the thread was not searched first"
        card = fake_discord.cards_in(thread)[0]
        assert button(card, "fresh") == f"tk-card:{card_id}:fresh"
        assert db_rows(db_path, "SELECT card_message_id FROM cards")[0][0] == card["id"]
        fake_llm.reply("Fresh start.")
        await fake_discord.click(button(card, "fresh"), message=card)
        await wait_until(lambda: "Fresh start." in fake_discord.texts_in(thread))
        await settle(bot)
    assert "PELICAN" not in fake_llm.requests[-1].prompt_text
    assert "Started fresh" in fake_discord.messages[card["id"]]["content"]
