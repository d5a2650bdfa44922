"""A card an earlier run recorded but never stored the message of: found in the thread, or posted once.

A run killed after Slack accepted the card but before its ts was stored leaves a card row without a message
id; the killed moment is reproduced by clearing that column between runs (the fake has no fault that accepts
a post and loses its answer). The next run finds the card in the thread (``conversations.replies``) instead of
posting a second one, and its buttons still work.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows, db_write
from tests.slack.conftest import SlackBotFactory
from tests.slack.test_slack_socket_mode import card_posts, card_value, replies_in, settle


async def answered_thread(slack_bot: SlackBotFactory, fake: FakeSlack, text: str) -> str:
    """A first run: a mention and its answer. Returns the thread's ts."""
    mention = Payloads.mention(text)
    async with slack_bot() as bot:
        await fake.send(Payloads.event_body(mention))
        await wait_until(lambda: len(replies_in(fake, mention["ts"])) == 1)
        await settle(bot)
    return str(mention["ts"])


async def test_a_card_posted_by_a_run_that_died_before_storing_its_ts_is_found_not_posted_again(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    thread = await answered_thread(slack_bot, fake_slack, "we picked Redis for caching")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(Payloads.message("what did we pick?", thread_ts=thread)))
        await wait_until(lambda: len(card_posts(fake_slack)) == 1)
        await settle(bot)
    card_ts = str(card_posts(fake_slack)[0]["_ts"])
    assert db_write(db_path, "UPDATE cards SET card_message_id = NULL") == 1  # killed before the ts was stored
    async with slack_bot() as bot:  # the start-up resume takes the waiting question, with its card
        await wait_until(lambda: db_rows(db_path, "SELECT card_message_id FROM cards")[0][0] == card_ts)
        assert len(card_posts(fake_slack)) == 1
        assert fake_slack.calls_to("conversations.replies")[-1].params["ts"] == thread
        fake_llm.reply("SUMMARY: the team picked Redis.")
        fake_llm.reply("You picked Redis.")
        click = Payloads.click(card_value(fake_slack, "catch_up"), message_ts=card_ts, thread_ts=thread)
        await fake_slack.send(click, kind="interactive")
        await wait_until(lambda: "You picked Redis." in replies_in(fake_slack, thread))
        await settle(bot)
    assert len(card_posts(fake_slack)) == 1
    assert "Caught up" in str(fake_slack.current_blocks(card_ts))
    assert db_rows(db_path, "SELECT state FROM cards")[0][0] == "caught_up"


async def test_a_card_recorded_but_never_posted_is_posted_once_when_the_thread_speaks(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    thread = await answered_thread(slack_bot, fake_slack, "codename is BLUEBIRD")
    thread_id = db_rows(db_path, "SELECT id FROM threads")[0][0]
    db_write(  # killed between recording the card and posting it
        db_path,
        "INSERT INTO cards (thread_id, state, created_utc) VALUES (?, 'pending', '2026-01-01T00:00:00+00:00')",
        (thread_id,),
    )
    card_id = db_rows(db_path, "SELECT id FROM cards")[0][0]
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(Payloads.message("still there?", thread_ts=thread)))
        await wait_until(lambda: len(card_posts(fake_slack)) == 1)
        await fake_slack.send(Payloads.event_body(Payloads.message("hello?", thread_ts=thread)))
        await settle(bot)
        assert len(card_posts(fake_slack)) == 1
        assert fake_slack.calls_to("conversations.replies"), "the thread was not searched first"
        assert card_value(fake_slack, "fresh") == f"tk-card:{card_id}:fresh"
        card_ts = str(card_posts(fake_slack)[0]["_ts"])
        assert db_rows(db_path, "SELECT card_message_id FROM cards")[0][0] == card_ts
        fake_llm.reply("Fresh start.")
        click = Payloads.click(card_value(fake_slack, "fresh"), message_ts=card_ts, thread_ts=thread)
        await fake_slack.send(click, kind="interactive")
        await wait_until(lambda: "Fresh start." in replies_in(fake_slack, thread))
    assert "BLUEBIRD" not in fake_llm.requests[-1].prompt_text


async def test_when_the_thread_cannot_be_searched_the_recorded_card_is_posted_as_before(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, db_path: Path
) -> None:
    thread = await answered_thread(slack_bot, fake_slack, "a topic")
    thread_id = db_rows(db_path, "SELECT id FROM threads")[0][0]
    db_write(
        db_path,
        "INSERT INTO cards (thread_id, state, created_utc) VALUES (?, 'pending', '2026-01-01T00:00:00+00:00')",
        (thread_id,),
    )
    fake_slack.errors["conversations.replies"] = ["ratelimited"]
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(Payloads.message("anyone?", thread_ts=thread)))
        await wait_until(lambda: len(card_posts(fake_slack)) == 1)
        await settle(bot)
    assert fake_slack.calls_to("conversations.replies")[-1].params["_status"] == "ratelimited"
    assert db_rows(db_path, "SELECT card_message_id FROM cards")[0][0] == str(card_posts(fake_slack)[0]["_ts"])
