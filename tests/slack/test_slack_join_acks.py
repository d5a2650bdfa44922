"""Issue 22 on Slack, the acknowledgement: a mention that brings the bot into a thread is acknowledged before the
thread's history is read, however slow Slack is to give it, and the history still lands before the mention.

``conversations.replies`` is held on the loopback Slack until the test has seen the mention acknowledged (the fake
answers a call held for 5 s with ``held_too_long``): a bot that read the history before its ack would never see it.
Through slack-bolt in Socket Mode and in HTTP mode; with two workers on Postgres at the end.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads, post_event
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows
from tests.slack.conftest import SIGNING_SECRET, SlackBotFactory
from tests.slack.test_slack_commands import shortcut
from tests.slack.test_slack_joining import PARENT, answers, logged, people_talked
from tests.slack.test_slack_socket_mode import replies_in, settle

HISTORY = [f"point {i} about the release" for i in range(6)]


def hold_history_until(fake: FakeSlack, released: list[bool]) -> None:
    fake.held_until["conversations.replies"] = lambda: bool(released)


def history_reads(fake: FakeSlack) -> list[object]:
    """How each conversations.replies call was answered: None for the thread, else its error or status."""
    return [call.params.get("_status") for call in fake.calls_to("conversations.replies")]


async def test_a_mention_is_acked_before_its_history_is_read_and_answered_with_it_after_a_retry_and_a_reply(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    people_talked(fake_slack, len(HISTORY))
    released: list[bool] = []
    hold_history_until(fake_slack, released)
    mention = Payloads.mention("what do you make of this?", thread_ts=PARENT)
    body = Payloads.event_body(mention)
    async with slack_bot() as bot:
        first = await fake_slack.send(body)
        await wait_until(lambda: first in fake_slack.acks, what="the mention acknowledged")
        await wait_until(lambda: len(fake_slack.calls_to("conversations.replies")) == 1, what="the history asked for")
        assert replies_in(fake_slack, PARENT) == [] and logged(db_path) == ["what do you make of this?"]
        retry = await fake_slack.send(body, retry_attempt=1)  # Slack's retry of the same event, mid-read
        said = await fake_slack.send(Payloads.event_body(Payloads.message("and the timeline?", thread_ts=PARENT)))
        await wait_until(lambda: {retry, said} <= fake_slack.acks, what="the retry and the reply acknowledged")
        assert replies_in(fake_slack, PARENT) == []  # nothing is answered before the history is in
        released.append(True)
        await wait_until(lambda: len(replies_in(fake_slack, PARENT)) == 1, timeout=20)
        await settle(bot)
        await shortcut(fake_slack, "tk_export", PARENT)
        await wait_until(lambda: len(fake_slack.shared_files()) == 1, what="the export")
        await settle(bot)
    assert history_reads(fake_slack) == [None]  # read once, and never held past the ack
    assert logged(db_path) == [*HISTORY, "what do you make of this?", "and the timeline?"]
    [prompt] = answers(fake_llm)  # one turn answers both, the history heard before them
    assert prompt.index("point 0 ") < prompt.index("point 5 ") < prompt.index("what do you make of this?")
    assert prompt.index("what do you make of this?") < prompt.index("and the timeline?")
    [(_, _, content)] = fake_slack.shared_files()
    export = content.decode().split("\n", 1)[1]  # below its title (the mention's text)
    reply = replies_in(fake_slack, PARENT)[0]
    order = [export.index(text) for text in ("point 0 ", "point 5 ", "what do you make of this?", "and the timeline?")]
    assert order == sorted(order) and order[-1] < export.index(reply)
    waiting = db_rows(db_path, "SELECT 1 FROM messages WHERE reply_state = 'waiting'")
    assert waiting == [] and db_rows(db_path, "SELECT 1 FROM thread_joins") == []


async def test_in_http_mode_a_rate_limited_history_is_waited_out_after_the_ack(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    """conversations.replies answers 429 with Retry-After: slack_sdk's handler sleeps it out, behind the ack."""
    people_talked(fake_slack, len(HISTORY))
    released: list[bool] = []
    hold_history_until(fake_slack, released)
    fake_slack.rate_limited["conversations.replies"] = 1
    body = Payloads.event_body(Payloads.mention("summary please", thread_ts=PARENT))
    async with slack_bot(http=True) as bot:
        assert await post_event(bot.events_url, SIGNING_SECRET, body) == 200  # the ack: Slack's request answered
        released.append(True)
        assert await post_event(bot.events_url, SIGNING_SECRET, body, retry_num=1) == 200
        await wait_until(lambda: len(replies_in(fake_slack, PARENT)) == 1, timeout=20)
        await bot.router.idle()
    assert history_reads(fake_slack) == [429, None]
    assert logged(db_path) == [*HISTORY, "summary please"]
    assert "Alice: point 0 about the release" in answers(fake_llm)[-1]
    assert len(answers(fake_llm)) == 1 and len(replies_in(fake_slack, PARENT)) == 1


async def test_a_reply_delivered_to_another_worker_during_the_join_waits_and_the_owner_answers_it_with_the_history(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, postgres_url: str
) -> None:
    """Two workers on Postgres: A gets the mention and reads the history, B gets the reply said meanwhile."""
    people_talked(fake_slack, len(HISTORY))
    released: list[bool] = []
    hold_history_until(fake_slack, released)
    async with slack_bot(database_url=postgres_url) as a:
        mention = await fake_slack.send(Payloads.event_body(Payloads.mention("thoughts?", thread_ts=PARENT)))
        await wait_until(lambda: mention in fake_slack.acks, what="the mention acknowledged by A")
        await wait_until(lambda: len(fake_slack.calls_to("conversations.replies")) == 1, what="A reading the history")
        async with slack_bot(database_url=postgres_url) as b:  # the newest connection: Slack's next event goes to B
            await wait_until(lambda: fake_slack.connected == 2, what="B connected")
            reply = Payloads.message("and the rollback plan?", thread_ts=PARENT, user="UBOB")
            said = await fake_slack.send(Payloads.event_body(reply))
            assert fake_slack.delivered_to == {mention: 0, said: 1}
            await wait_until(lambda: said in fake_slack.acks, what="the reply acknowledged by B")
            await b.router.idle()
            assert replies_in(fake_slack, PARENT) == []
            released.append(True)
            await wait_until(lambda: len(replies_in(fake_slack, PARENT)) == 1, timeout=20)
            await settle(a)
            await settle(b)
        await settle(a)
    assert history_reads(fake_slack) == [None]
    [prompt] = answers(fake_llm)
    assert prompt.index("point 0 ") < prompt.index("point 5 ") < prompt.index("thoughts?")
    assert prompt.index("thoughts?") < prompt.index("and the rollback plan?")
    rows = await _contents(postgres_url)
    assert rows == [*HISTORY, "thoughts?", "and the rollback plan?", replies_in(fake_slack, PARENT)[0]]


async def test_a_join_whose_worker_stalls_is_finished_by_the_worker_that_takes_the_thread_and_answered_once(
    slack_bot: SlackBotFactory,
    fake_slack: FakeSlack,
    fake_llm: FakeLLM,
    postgres_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A acked the mention and reads the history, then stalls past its lease: B's poll takes the thread, reads the
    history itself and answers; A's late write of the history is refused by the fence, so nothing is logged twice."""
    people_talked(fake_slack, len(HISTORY))
    released: list[bool] = []
    hold_history_until(fake_slack, released)
    workers = {"database_url": postgres_url, "worker_lease_s": 300.0, "worker_poll_s": 0.05}
    async with slack_bot(**workers) as a:
        mention = await fake_slack.send(Payloads.event_body(Payloads.mention("thoughts?", thread_ts=PARENT)))
        await wait_until(lambda: mention in fake_slack.acks, what="the mention acknowledged by A")
        await wait_until(lambda: len(fake_slack.calls_to("conversations.replies")) == 1, what="A reading the history")
        async with slack_bot(**workers) as b:
            await _expire_the_lease(postgres_url)  # as a stalled worker's lease looks to the others
            await wait_until(lambda: len(fake_slack.calls_to("conversations.replies")) == 2, what="B reading it")
            released.append(True)
            await wait_until(lambda: len(replies_in(fake_slack, PARENT)) == 1, timeout=20)
            await settle(b)
            await settle(a)
    assert len(answers(fake_llm)) == 1 and len(replies_in(fake_slack, PARENT)) == 1
    assert "Alice: point 0 about the release" in answers(fake_llm)[0]
    assert await _contents(postgres_url) == [*HISTORY, "thoughts?", replies_in(fake_slack, PARENT)[0]]
    assert any("a write was refused" in r.getMessage() for r in caplog.records)  # A's history, fenced off


async def _expire_the_lease(url: str) -> None:
    from storage.postgres.db import open_postgres

    db = await open_postgres(url)
    try:
        await db.execute("UPDATE leases SET expires_utc = clock_timestamp() - interval '1 second'")
    finally:
        await db.close()


async def _contents(url: str) -> list[str]:
    from storage.backends import open_storage

    async with open_storage(url) as storage:
        [thread] = await storage.log.find_threads(name=PARENT)
        return [m.content for m in await storage.log.all_messages(thread_id=thread.id)]
