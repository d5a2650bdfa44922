"""A Slack thread's agent-session title follows its message: deleted or edited, the text leaves the title too.

The session is created with the thread's title, made from the mention that started it. When that message is
deleted or edited, storage blanks the title and the router renames the session (``agents.sessions.rename``) to a
neutral one, so Slack's agent UI does not keep showing deleted text; in a DM the assistant thread's title the bot
set goes the same way. A workspace that refuses the rename is told once and asked again later, with the rename
still owed.
"""

from __future__ import annotations

import logging

import pytest

from bots.router.forgetting import NEUTRAL_TITLE
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.slack.conftest import SlackBotFactory
from tests.slack.test_slack_socket_mode import replies_in, settle

SECRET = "my password is hunter2, rotate it"


@pytest.mark.parametrize("how", ["deleted", "edited"])
async def test_a_deleted_or_edited_mention_renames_the_agent_session_so_its_text_leaves_the_title(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, how: str
) -> None:
    fake_llm.reply_with(lambda body: "Noted.")
    mention = Payloads.mention(SECRET)
    root = mention["ts"]
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: fake_slack.session_statuses(root) == ["processing", "active"])
        session = fake_slack.sessions[("C1", root)]
        assert session.title is not None and "hunter2" in session.title
        later = Payloads.message("and the other one", thread_ts=root)
        await fake_slack.send(Payloads.event_body(later))
        await wait_until(lambda: len(replies_in(fake_slack, root)) == 2)
        await fake_slack.send(Payloads.event_body(Payloads.deleted(ts=later["ts"], thread_ts=root)))
        await settle(bot)
        assert fake_slack.calls_to("agents.sessions.rename") == []  # the title was not made from that one
        if how == "deleted":
            await fake_slack.send(Payloads.event_body(Payloads.deleted(ts=root, thread_ts=root)))
        else:
            await fake_slack.send(Payloads.event_body(Payloads.changed(ts=root, text="never mind", thread_ts=root)))
        await wait_until(lambda: session.title == NEUTRAL_TITLE)
        await settle(bot)
    assert len(fake_slack.calls_to("agents.sessions.rename")) == 1
    assert session.titles[-1] == NEUTRAL_TITLE and "hunter2" not in session.title


async def test_a_deleted_first_dm_renames_the_session_and_the_assistant_thread_title(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    fake_llm.reply("Noted.")
    first = Payloads.dm(SECRET)
    root = first["ts"]
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(first))
        await wait_until(lambda: fake_slack.session_statuses(root, channel="D1") == ["processing", "active"])
        await wait_until(lambda: bool(fake_slack.calls_to("assistant.threads.setTitle")))
        await fake_slack.send(Payloads.event_body(Payloads.deleted(ts=root, thread_ts=root, channel="D1")))
        await wait_until(lambda: len(fake_slack.calls_to("assistant.threads.setTitle")) == 2)
        await settle(bot)
    first_title, renamed = (c.params["title"] for c in fake_slack.calls_to("assistant.threads.setTitle"))
    assert "hunter2" in first_title and renamed == NEUTRAL_TITLE
    assert fake_slack.sessions[("D1", root)].title == NEUTRAL_TITLE


async def test_a_refused_rename_is_said_once_and_sent_when_the_workspace_is_asked_again(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    fake_llm.reply_with(lambda body: "Noted.")
    mention = Payloads.mention(SECRET)
    root = mention["ts"]
    with caplog.at_level(logging.WARNING, logger="bots.slack.status"):
        async with slack_bot() as bot:
            await fake_slack.send(Payloads.event_body(mention))
            await wait_until(lambda: fake_slack.session_statuses(root) == ["processing", "active"])
            fake_slack.refused_methods["agents.sessions.rename"] = "missing_scope"
            await fake_slack.send(Payloads.event_body(Payloads.deleted(ts=root, thread_ts=root)))
            await wait_until(lambda: len(fake_slack.calls_to("agents.sessions.rename")) == 1)
            other = Payloads.mention("a second thread")
            await fake_slack.send(Payloads.event_body(other))
            await wait_until(lambda: len(replies_in(fake_slack, other["ts"])) == 1)
            await settle(bot)
            assert fake_slack.session_statuses(other["ts"]) == []  # refused: not asked again within the hour
            assert len(fake_slack.calls_to("agents.sessions.rename")) == 1
            # An hour later Slack takes the methods again: the rename still owed goes with the next status.
            del fake_slack.refused_methods["agents.sessions.rename"]
            bot.adapter.outbox.sessions._retry_after_s = 0.0  # "after an hour": now
            await fake_slack.send(Payloads.event_body(Payloads.message("still there?", thread_ts=other["ts"])))
            await wait_until(lambda: fake_slack.sessions[("C1", root)].title == NEUTRAL_TITLE)
            await settle(bot)
    assert len([r for r in caplog.records if "refused agent sessions" in r.getMessage()]) == 1
    assert "hunter2" not in str(fake_slack.sessions[("C1", root)].title)
