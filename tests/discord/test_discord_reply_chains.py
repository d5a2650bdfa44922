"""Issue 22 on Discord, reply chains: a mention in a channel that replies to a message brings the chain along.

The bot's thread is made from the mention, so it has nothing before it; what the mention continues is the chain
of replies it answers. Everything goes through discord.py against the loopback Discord: the chain is what the fake
stores (messages people wrote in the channel without the bot), read back with ``GET /channels/{id}/messages/{id}``,
each reply served with the message it answers, as Discord does. The log is read through the storage bundle, so
the stories that touch the log run on SQLite and on Postgres.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from storage.backends import open_storage
from storage.records import LoggedMessage
from tests.discord.conftest import DiscordBotFactory, button, settle
from tests.fakes.discord import ALICE, BOB, CHANNEL, FakeDiscord, user
from tests.fakes.llm import FakeLLM
from tests.fakes.waiting import wait_until

HELPER_BOT = user("800000000000000009", "Helper", bot=True)
FETCHES = rf"/channels/{CHANNEL}/messages/\d+"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, db_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{db_path}"
    return str(request.getfixturevalue("postgres_url"))


def chain(fake: FakeDiscord, *said: tuple[dict[str, Any], str]) -> list[dict[str, Any]]:
    """Messages people wrote in the channel, each replying to the one before; oldest first."""
    written: list[dict[str, Any]] = []
    for author, text in said:
        replying_to = written[-1] if written else None
        written.append(fake.wrote_while_bot_was_away(text, channel_id=CHANNEL, author=author, replying_to=replying_to))
    return written


async def logged(database_url: str, thread: str) -> list[LoggedMessage]:
    async with open_storage(database_url) as storage:
        [record] = await storage.log.find_threads(name=thread)
        return await storage.log.all_messages(thread_id=record.id)


def user_texts(rows: list[LoggedMessage]) -> list[str]:
    return [r.content for r in rows if r.role == "user"]


def answers(fake_llm: FakeLLM) -> list[str]:
    """The prompts of the answers (streamed requests; summaries are not streamed)."""
    return [r.prompt_text for r in fake_llm.requests if r.stream]


async def mention_replying(bot_fake: FakeDiscord, text: str, to: dict[str, Any], **kw: Any) -> str:
    """A mention in the channel replying to ``to``; waits for the answer in the thread made from it."""
    mention = await bot_fake.user_says(text, mention_bot=True, replying_to=to, **kw)
    await wait_until(lambda: len(bot_fake.texts_in(mention["id"])) == 1, timeout=20)
    return str(mention["id"])


async def test_a_mention_replying_to_a_chain_of_three_is_answered_with_it_oldest_first_each_logged_once(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, database_url: str
) -> None:
    said = chain(
        fake_discord,
        (ALICE, "we could ship on Friday"),
        (BOB, "the migration is not ready"),
        (ALICE, "it will be by Thursday"),
    )
    fake_discord.wrote_while_bot_was_away("lunch anyone?", channel_id=CHANNEL, author=BOB)  # in the channel, no link
    async with discord_bot(database_url=database_url) as bot:
        thread = await mention_replying(fake_discord, "who is right?", said[-1], author=BOB)
        await settle(bot)
        prompt = answers(fake_llm)[-1]
        lines = ["Alice: we could ship on Friday", "Bob: the migration is not ready", "Alice: it will be by Thursday"]
        assert [prompt.index(line) for line in lines] == sorted(prompt.index(line) for line in lines)
        assert prompt.index(lines[-1]) < prompt.index("who is right?") and "lunch" not in prompt
        # The newest is fetched; Discord sends the one it answers along; the first is fetched: two calls for three.
        assert len(fake_discord.calls_to("GET", FETCHES)) == 2
        await fake_discord.dispatch("MESSAGE_CREATE", fake_discord.served(fake_discord.messages[thread]))
        await settle(bot)  # the gateway delivered the mention again: the thread is tracked, nothing is read
        assert len(fake_discord.calls_to("GET", FETCHES)) == 2 and len(fake_discord.texts_in(thread)) == 1
    rows = await logged(database_url, thread)
    assert user_texts(rows) == [
        "we could ship on Friday",
        "the migration is not ready",
        "it will be by Thursday",
        "who is right?",
    ]
    assert [r.platform_message_id for r in rows if r.role == "user"] == [*(m["id"] for m in said), thread]
    users = [r for r in rows if r.role == "user"]
    assert [r.author_name for r in users] == ["Alice", "Bob", "Alice", "Bob"] and all(r.sent_utc for r in users)
    assert [r.reply_state for r in users] == ["answered"] * 4  # the chain as read, the mention answered


async def test_a_deleted_or_edited_chain_message_reaches_the_log_and_the_session(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, database_url: str
) -> None:
    secret, plan = chain(fake_discord, (BOB, "the staging password is hunter2"), (ALICE, "we deploy on Friday"))
    fake_llm.reply("Noted.")  # no echo of the texts in the answers: what the next request holds is the log's
    fake_llm.reply("Noted again.")
    async with discord_bot(database_url=database_url) as bot:
        thread = await mention_replying(fake_discord, "any concerns?", plan)
        assert "hunter2" in answers(fake_llm)[-1]
        await fake_discord.user_deletes(secret)  # Discord names the channel, not the bot's thread
        await fake_discord.user_edits(plan, "we deploy on Monday")
        await settle(bot)
        await fake_discord.user_says("and now?", channel_id=thread)
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 2)
        await settle(bot)
    prompt = answers(fake_llm)[-1]
    assert "hunter2" not in prompt and "Friday" not in prompt and "Alice: we deploy on Monday" in prompt
    rows = await logged(database_url, thread)
    assert [(r.content, r.deleted, r.edited) for r in rows if r.role == "user"][:2] == [
        ("", True, False),
        ("we deploy on Monday", False, True),
    ]


async def test_after_a_restart_the_catch_up_summarizes_the_chain_with_the_thread(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, database_url: str
) -> None:
    said = chain(fake_discord, (ALICE, "the vendor quoted 40k"), (BOB, "too much, ask for 30k"))
    async with discord_bot(database_url=database_url):
        thread = await mention_replying(fake_discord, "draft a reply to the vendor", said[-1])
    async with discord_bot(database_url=database_url) as bot:  # a new process on the same database
        await fake_discord.user_says("where were we?", channel_id=thread, author=BOB)
        await wait_until(lambda: len(fake_discord.cards_in(thread)) == 1)
        card = fake_discord.cards_in(thread)[0]
        fake_llm.reply("SUMMARY: a counter-offer to the vendor.")
        fake_llm.reply("At 30k.")
        await fake_discord.click(button(card, "catch_up"), message=card, who=BOB)
        await wait_until(lambda: "At 30k." in fake_discord.texts_in(thread))
        await settle(bot)
    summary = next(r for r in fake_llm.requests if not r.stream).prompt_text
    assert '<message from="Alice" role="user">the vendor quoted 40k' in summary
    assert summary.index("quoted 40k") < summary.index("ask for 30k") < summary.index("draft a reply")


async def test_a_message_logged_in_two_threads_is_forgotten_in_both(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, database_url: str
) -> None:
    """Alice's mention starts a thread; Bob's mention replying to it starts another, with hers as its history."""
    async with discord_bot(database_url=database_url) as bot:
        first = await fake_discord.user_says("the door code is 4417, can you remember it?", mention_bot=True)
        await wait_until(lambda: len(fake_discord.texts_in(first["id"])) == 1)
        second = await mention_replying(fake_discord, "what did she ask?", first, author=BOB)
        assert "4417" in answers(fake_llm)[-1]
        await fake_discord.user_deletes(first)
        await settle(bot)
    for thread in (first["id"], second):
        [gone] = [r for r in await logged(database_url, thread) if r.platform_message_id == first["id"]]
        assert gone.deleted and "4417" not in gone.content


async def test_chain_messages_of_bots_and_of_people_the_allowlist_excludes_are_skipped_and_the_chain_goes_on(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    said = chain(
        fake_discord,
        (ALICE, "first point"),
        (BOB, "bob's aside"),
        (HELPER_BOT, "beep, a reminder"),
        (ALICE, "second point"),
    )
    async with discord_bot(discord_allowed_users=ALICE["id"]) as bot:
        thread = await mention_replying(fake_discord, "summary please", said[-1])
        await settle(bot)
    assert user_texts(await logged(f"sqlite:///{db_path}", thread)) == ["first point", "second point", "summary please"]
    prompt = answers(fake_llm)[-1]
    assert "aside" not in prompt and "Bob" not in prompt and "beep" not in prompt
    assert len(fake_discord.calls_to("GET", FETCHES)) == 2  # Alice's, then Bob's (it sent the first point along)


@pytest.mark.parametrize("deleted", ["the first, fetched", "the second, sent along"])
async def test_a_chain_that_reaches_a_deleted_message_is_read_up_to_there_and_said_once(
    discord_bot: DiscordBotFactory,
    fake_discord: FakeDiscord,
    db_path: Path,
    caplog: pytest.LogCaptureFixture,
    deleted: str,
) -> None:
    caplog.set_level(logging.INFO)
    said = chain(fake_discord, (ALICE, "one"), (BOB, "two"), (ALICE, "three"))
    gone = said[0] if deleted.startswith("the first") else said[1]
    del fake_discord.messages[gone["id"]]
    async with discord_bot() as bot:
        thread = await mention_replying(fake_discord, "where are we?", said[-1])
        await settle(bot)
    kept = ["two", "three"] if gone is said[0] else ["three"]
    assert user_texts(await logged(f"sqlite:///{db_path}", thread)) == [*kept, "where are we?"]
    told = [r for r in caplog.records if "reaches deleted message" in r.getMessage()]
    assert len(told) == 1 and gone["id"] in told[0].getMessage()


async def test_a_refused_chain_is_logged_once_and_each_mention_still_answered(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    said = chain(fake_discord, (ALICE, "one"), (BOB, "two"))
    fake_discord.fail("GET", FETCHES, status=403, code=50001, times=2)
    async with discord_bot() as bot:
        first = await mention_replying(fake_discord, "thoughts?", said[-1])
        second = await mention_replying(fake_discord, "and yours?", said[0], author=BOB)
        await settle(bot)
    assert user_texts(await logged(f"sqlite:///{db_path}", first)) == ["thoughts?"]
    assert user_texts(await logged(f"sqlite:///{db_path}", second)) == ["and yours?"]
    refusals = [r for r in caplog.records if "refused the history" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelno == logging.WARNING


async def test_a_mention_replying_inside_a_thread_reads_the_thread_once_and_no_chain(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_discord.existing_thread("555", "release chat")
    earlier = fake_discord.wrote_while_bot_was_away("ship Friday?", channel_id="555", author=BOB)
    fake_discord.wrote_while_bot_was_away("no, Monday", channel_id="555", replying_to=earlier)
    async with discord_bot() as bot:
        await fake_discord.user_says("which is it?", channel_id="555", mention_bot=True, replying_to=earlier)
        await wait_until(lambda: len(fake_discord.texts_in("555")) == 1, timeout=20)
        await settle(bot)
    assert user_texts(await logged(f"sqlite:///{db_path}", "555")) == ["ship Friday?", "no, Monday", "which is it?"]
    assert fake_discord.calls_to("GET", r"/channels/\d+/messages/\d+") == []
    assert len(fake_discord.calls_to("GET", r"/channels/555/messages")) == 1
