"""A Slack title made from a message leaves Slack whichever process forgot the message.

``threadkeeper forget --user`` runs beside the bot (here: the CLI's own function, on its own connection to the
database) and the retention purge runs in the bot's housekeeping: neither holds Slack's connection, so the bot
learns from the erasure journal that a title it gave a thread was made from forgotten text, and renames the
agent session (and, in a DM, the assistant thread's title) within the follower's poll. A rename owed while the
bot was stopped is made when it starts. A thread the bot cannot rename (another platform's, a workspace
uninstalled since) does not stop the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bots import app as bots_app
from bots.cli import forget, forget_user
from bots.operator import housekeeping
from bots.router import forgetting
from bots.router.forgotten_titles import NEUTRAL_TITLE
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads, post_event
from tests.fakes.waiting import wait_until
from tests.slack.conftest import SIGNING_SECRET, SlackBotFactory
from tests.slack.distributed import (
    FIRST_ANSWER_S,
    DistributedBot,
    distributed_bots,
    event_for,
    install,
    mention_in,
    replies,
)
from tests.slack.test_slack_socket_mode import replies_in, settle

SECRET = "my password is hunter2, rotate it"


@pytest.fixture
def distributed_bot(make_settings: MakeSettings, fake_slack: FakeSlack) -> DistributedBot:
    return distributed_bots(make_settings, fake_slack)


@pytest.fixture(autouse=True)
def quick_follower(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The journal is polled every 50 ms instead of every 2 s: the rename comes within one poll either way."""
    monkeypatch.setattr(forgetting, "FOLLOW_INTERVAL_S", 0.05)
    yield


def session_title(fake: FakeSlack, root: str, channel: str = "C1") -> str | None:
    session = fake.sessions.get((channel, root))
    return None if session is None else session.title


async def test_forget_user_beside_the_running_bot_renames_the_sessions_titled_from_their_messages(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    fake_llm.reply_with(lambda body: "Noted.")
    alice, bob, dm = Payloads.mention(SECRET), Payloads.mention("Bob's plans", user="UBOB"), Payloads.dm(SECRET)
    async with slack_bot() as bot:
        for event in (alice, bob, dm):
            await fake_slack.send(Payloads.event_body(event))
        await wait_until(lambda: all(len(replies_in(fake_slack, e["ts"])) == 1 for e in (alice, bob)), timeout=30)
        await wait_until(lambda: len(fake_slack.calls_to("assistant.threads.setTitle")) == 1, timeout=30)
        await settle(bot)
        assert "hunter2" in str(session_title(fake_slack, alice["ts"]))
        assert fake_slack.calls_to("agents.sessions.rename") == []

        assert await forget_user(bot.settings, "slack:UALICE") == 0  # the operator's command, beside the bot
        await wait_until(lambda: session_title(fake_slack, alice["ts"]) == NEUTRAL_TITLE, what="the rename")
        await wait_until(lambda: session_title(fake_slack, dm["ts"], "D1") == NEUTRAL_TITLE, what="the DM's")
        await wait_until(lambda: len(fake_slack.calls_to("assistant.threads.setTitle")) == 2)
        await settle(bot)
    renamed = {(c.params["channel_id"], c.params["thread_ts"]) for c in fake_slack.calls_to("agents.sessions.rename")}
    assert renamed == {("C1", alice["ts"]), ("D1", dm["ts"])}  # once each; Bob's title stays his
    assert len(fake_slack.calls_to("agents.sessions.rename")) == 2
    assert session_title(fake_slack, bob["ts"]) == "Bob's plans"
    assert fake_slack.calls_to("assistant.threads.setTitle")[-1].params["title"] == NEUTRAL_TITLE


async def test_the_retention_purge_of_a_running_bot_renames_a_session_titled_from_a_purged_message(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fake's messages are from 2023: 30 days of retention purges each one once answered, in the bot's own
    housekeeping (here every round), which holds no adapter either."""
    fake_llm.reply_with(lambda body: "Noted.")
    mention = Payloads.mention(SECRET)
    monkeypatch.setattr(housekeeping, "INTERVAL_S", 0.05)
    monkeypatch.setattr(housekeeping, "RETENTION_EVERY", timedelta(0))
    async with slack_bot(log_retention_days=30) as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: session_title(fake_slack, mention["ts"]) == NEUTRAL_TITLE, timeout=30)
        await settle(bot)
        first_title = fake_slack.sessions[("C1", mention["ts"])].titles[0]
    assert "hunter2" in first_title and len(fake_slack.calls_to("agents.sessions.rename")) == 1


@pytest.mark.parametrize("how", ["forget --user", "retention at start-up"])
async def test_a_title_forgotten_while_the_bot_was_stopped_is_renamed_when_it_starts(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, how: str
) -> None:
    fake_llm.reply_with(lambda body: "Noted.")
    mention = Payloads.mention(SECRET)
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 1, timeout=30)
        await settle(bot)
    if how == "forget --user":
        assert await forget_user(bot.settings, "slack:UALICE") == 0
    async with slack_bot(log_retention_days=30 if how.startswith("retention") else None) as bot:
        await wait_until(lambda: session_title(fake_slack, mention["ts"]) == NEUTRAL_TITLE, what="the owed rename")
        await settle(bot)
    async with slack_bot() as bot:  # owed no more: a later start does not rename again
        await settle(bot)
    assert len(fake_slack.calls_to("agents.sessions.rename")) == 1


async def test_a_rename_owed_by_a_thread_forgotten_since_is_dropped_not_sent(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    """``forget --user`` then ``forget THREAD`` while the bot is stopped: the thread's row is gone, so the bot
    knows no thread to rename; the owed rename is settled, not tried at every start."""
    fake_llm.reply_with(lambda body: "Noted.")
    mention = Payloads.mention(SECRET)
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 1, timeout=30)
        await settle(bot)
    assert await forget_user(bot.settings, "slack:UALICE") == 0
    async with bots_app.open_storage_for(bot.settings) as storage:
        assert len(await storage.erasures.titles_owed()) == 1
    assert await forget(bot.settings, mention["ts"]) == 0
    async with slack_bot() as bot:
        await settle(bot)
        async with bots_app.open_storage_for(bot.settings) as storage:
            assert await storage.erasures.titles_owed() == []
    assert fake_slack.calls_to("agents.sessions.rename") == []


async def test_a_rename_owed_on_a_platform_this_bot_does_not_run_is_left_for_one_that_does(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    """A Discord thread in the same database, titled from the same person's message: the Slack bot can rename
    nothing there. It neither stops following the journal nor takes the rename a Discord bot owes."""
    fake_llm.reply_with(lambda body: "Noted.")
    mention = Payloads.mention(SECRET)
    async with slack_bot() as bot:
        async with bots_app.open_storage_for(bot.settings) as storage:
            elsewhere = await storage.log.ensure_thread(
                platform="discord", workspace="G1", channel="C9", thread="T9", title=SECRET[:20],
                now=datetime.now(UTC), title_message_id="M9",
            )  # fmt: skip
            await storage.log.record_message(
                thread_id=elsewhere, platform_message_id="M9", author_id="UALICE", author_name="Alice",
                role="user", content=SECRET, sent_utc=datetime.now(UTC), now=datetime.now(UTC),
            )  # fmt: skip
            await storage.erasures.delete_message(
                thread_id=elsewhere, platform_message_id="M9", deleted_utc=datetime.now(UTC)
            )
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 1, timeout=30)
        with caplog.at_level(logging.ERROR):
            assert await forget_user(bot.settings, "slack:UALICE") == 0
            await wait_until(lambda: session_title(fake_slack, mention["ts"]) == NEUTRAL_TITLE)
            await settle(bot)
        async with bots_app.open_storage_for(bot.settings) as storage:
            assert [e.thread_id for e in await storage.erasures.titles_owed()] == [elsewhere]
    assert not [r for r in caplog.records if r.name.startswith("bots.router")]


async def test_a_workspace_uninstalled_since_does_not_stop_the_renames_of_the_others(
    distributed_bot: DistributedBot,
    fake_slack: FakeSlack,
    fake_llm: FakeLLM,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """OAuth mode: Alice's titles in T2 (uninstalled since, so no token to rename with) and T1. T2's rename is
    refused (the log says so); the follower goes on and T1's session is renamed."""
    fake_llm.reply_with(lambda body: "Noted.")
    async with distributed_bot() as bot:
        await install(bot, fake_slack, "T1")
        await install(bot, fake_slack, "T2")
        gone, kept = mention_in("T2", SECRET, channel="C2"), mention_in("T1", SECRET)
        for team, event in (("T2", gone), ("T1", kept)):
            assert await post_event(bot.events_url, SIGNING_SECRET, event_for(team, event)) == 200
            await wait_until(lambda e=event: len(replies(fake_slack, e["ts"])) == 1, timeout=FIRST_ANSWER_S)
        await bot.router.idle()
        fake_slack.uninstall("T2")
        uninstalled = event_for("T2", {"type": "app_uninstalled", "event_ts": "1.0"})
        assert await post_event(bot.events_url, SIGNING_SECRET, uninstalled) == 200
        with caplog.at_level(logging.INFO):
            assert await forget_user(bot.settings, "slack:UALICE") == 0
            await wait_until(lambda: session_title(fake_slack, kept["ts"]) == NEUTRAL_TITLE, what="T1's rename")
            await bot.router.idle()
    assert "hunter2" in str(session_title(fake_slack, gone["ts"], "C2"))  # Slack would not take the call
    assert not [r for r in caplog.records if "could not apply erasure" in r.getMessage()]
    assert [r for r in caplog.records if "could not rename" in r.getMessage() and ":T2:" in r.getMessage()]
