"""Issue 22 on Slack: a mention brings the bot into a thread with its history, and it answers when addressed.

Through slack-bolt in Socket Mode against the loopback Slack: the thread's earlier messages are what the fake keeps
(``wrote_in_thread``), read back with ``conversations.replies``, oldest first, paged by cursor.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows
from tests.slack.conftest import SlackBotFactory
from tests.slack.test_slack_socket_mode import replies_in, settle

PARENT = "1690000000.000100"


def people_talked(fake: FakeSlack, count: int, *, words: str = "about the release") -> list[dict[str, object]]:
    """A thread of ``count`` messages by Alice and Bob (the first is its parent) that the bot was never part of."""
    return [
        fake.wrote_in_thread(
            f"point {i} {words}",
            thread_ts=PARENT,
            user="UBOB" if i % 2 else "UALICE",
            ts=PARENT if i == 0 else f"1690000000.{100 + i:06d}",
        )
        for i in range(count)
    ]


def logged(db_path: Path) -> list[str]:
    rows = db_rows(db_path, "SELECT content FROM messages WHERE role = 'user' ORDER BY id")
    return [str(r["content"]) for r in rows]


def answers(fake_llm: FakeLLM) -> list[str]:
    return [r.prompt_text for r in fake_llm.requests if r.stream]


async def test_a_mention_in_a_thread_of_30_messages_is_answered_with_them_and_a_retry_adds_nothing(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    people_talked(fake_slack, 30)
    mention = Payloads.mention("what do you make of this?", thread_ts=PARENT)
    body = Payloads.event_body(mention)
    async with slack_bot() as bot:
        await fake_slack.send(body)
        await wait_until(lambda: len(replies_in(fake_slack, PARENT)) == 1, timeout=20)
        await settle(bot)
        prompt = answers(fake_llm)[-1]
        assert "Alice: point 0 about the release" in prompt and "Bob: point 29 about the release" in prompt
        assert prompt.index("point 0 ") < prompt.index("point 29 ") < prompt.index("what do you make of this?")
        await fake_slack.send(body, retry_attempt=1)  # Slack's retry of the same event
        await settle(bot)
    assert logged(db_path) == [f"point {i} about the release" for i in range(30)] + ["what do you make of this?"]
    reads = fake_slack.calls_to("conversations.replies")
    assert len(reads) == 1 and reads[0].params["latest"] == mention["ts"]
    assert len(replies_in(fake_slack, PARENT)) == 1


async def test_a_thread_of_2000_messages_is_paged_to_the_newest_200_and_summarized_within_the_window(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    window = 2048
    fake_llm.max_context_tokens = window
    people_talked(fake_slack, 2000, words="we should check the release notes and the migration before Friday")
    async with slack_bot(llm_context_window=window, llm_max_output_tokens=256) as bot:
        await fake_slack.send(Payloads.event_body(Payloads.mention("so where are we?", thread_ts=PARENT)))
        await wait_until(lambda: len(replies_in(fake_slack, PARENT)) == 1, timeout=30)
        await settle(bot)
    history = logged(db_path)[:-1]
    assert len(history) == 200 and history[0].startswith("point 1800 ") and history[-1].startswith("point 1999 ")
    assert len(fake_slack.calls_to("conversations.replies")) == 10  # every page, to reach the newest
    assert [r for r in fake_llm.requests if not r.stream], "the history passed the window: summarized, not cut"
    assert all(r.status == 200 for r in fake_llm.requests)
    assert fake_llm.max_seen_tokens is not None and fake_llm.max_seen_tokens <= window


async def test_a_deleted_message_of_the_joined_history_leaves_the_session(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_slack.wrote_in_thread("deploy checklist", thread_ts=PARENT, ts=PARENT)
    secret = fake_slack.wrote_in_thread("the staging password is hunter2", thread_ts=PARENT, user="UBOB")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(Payloads.mention("any concerns?", thread_ts=PARENT)))
        await wait_until(lambda: len(replies_in(fake_slack, PARENT)) == 1, timeout=20)
        await settle(bot)  # the placeholder shows before the model is asked
        assert "hunter2" in answers(fake_llm)[-1]
        await fake_slack.send(Payloads.event_body(Payloads.deleted(ts=str(secret["ts"]), thread_ts=PARENT)))
        await settle(bot)
        await fake_slack.send(Payloads.event_body(Payloads.message("and now?", thread_ts=PARENT)))
        await wait_until(lambda: len(replies_in(fake_slack, PARENT)) == 2)
        await settle(bot)
    assert "hunter2" not in answers(fake_llm)[-1] and "deploy checklist" in answers(fake_llm)[-1]
    assert not any("hunter2" in text for text in logged(db_path))


async def test_history_of_people_the_allowlist_excludes_is_left_out(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    people_talked(fake_slack, 4)
    async with slack_bot(slack_allowed_users="UALICE") as bot:
        await fake_slack.send(Payloads.event_body(Payloads.mention("summary please", thread_ts=PARENT)))
        await wait_until(lambda: len(replies_in(fake_slack, PARENT)) == 1, timeout=20)
        await settle(bot)
    assert logged(db_path) == ["point 0 about the release", "point 2 about the release", "summary please"]
    assert "Bob" not in answers(fake_llm)[-1]


async def test_a_refused_history_is_logged_once_and_the_mention_still_answered(
    slack_bot: SlackBotFactory,
    fake_slack: FakeSlack,
    fake_llm: FakeLLM,
    db_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    people_talked(fake_slack, 3)
    other = "1690000001.000100"
    fake_slack.wrote_in_thread("another thread", thread_ts=other, ts=other)
    fake_slack.errors["conversations.replies"] = ["missing_scope", "missing_scope"]
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(Payloads.mention("thoughts?", thread_ts=PARENT)))
        await fake_slack.send(Payloads.event_body(Payloads.mention("and here?", thread_ts=other)))
        await wait_until(
            lambda: len(replies_in(fake_slack, PARENT)) == len(replies_in(fake_slack, other)) == 1, timeout=20
        )
        await settle(bot)
    assert sorted(logged(db_path)) == ["and here?", "thoughts?"]
    refusals = [r for r in caplog.records if "refused the history" in r.getMessage()]
    assert len(refusals) == 1 and "missing_scope" in refusals[0].getMessage()


async def test_auto_leaves_a_side_conversation_alone_and_a_mention_answers_with_it(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    mention = Payloads.mention("help me plan the release")
    thread = mention["ts"]
    async with slack_bot(reply_mode="auto") as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(replies_in(fake_slack, thread)) == 1, timeout=20)
        await fake_slack.send(Payloads.event_body(Payloads.message("and the changelog?", thread_ts=thread)))
        await wait_until(lambda: len(replies_in(fake_slack, thread)) == 2)  # one person: every message
        await fake_slack.send(
            Payloads.event_body(Payloads.message("Alice, did you run the migration?", thread_ts=thread, user="UBOB"))
        )
        await settle(bot)  # Slack delivers events concurrently: Bob is in the thread before Alice answers him
        await fake_slack.send(Payloads.event_body(Payloads.message("yes, ten minutes", thread_ts=thread)))
        await settle(bot)
        assert len(replies_in(fake_slack, thread)) == 2  # two people talking to each other: logged, not answered
        await fake_slack.send(Payloads.event_body(Payloads.mention("too long?", thread_ts=thread, user="UBOB")))
        await wait_until(lambda: len(replies_in(fake_slack, thread)) == 3)
        await settle(bot)
    prompt = answers(fake_llm)[-1]
    assert "Bob: Alice, did you run the migration?" in prompt and "Alice: yes, ten minutes" in prompt
    assert len(logged(db_path)) == 5


async def test_reply_mention_chosen_by_mention_survives_a_restart_without_a_card(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    mention = Payloads.mention("release plan")
    thread = mention["ts"]
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(replies_in(fake_slack, thread)) == 1, timeout=20)
        await fake_slack.send(Payloads.event_body(Payloads.mention("reply mention", thread_ts=thread)))
        await wait_until(lambda: any("now mention" in e.get("text", "") for e in fake_slack.ephemerals()))
        await settle(bot)
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(Payloads.message("noting the date", thread_ts=thread)))
        await settle(bot)
        assert [c for c in fake_slack.posts(thread_ts=thread) if c.params.get("blocks")] == []  # no card
        await fake_slack.send(Payloads.event_body(Payloads.mention("where were we?", thread_ts=thread)))
        await wait_until(lambda: any(c.params.get("blocks") for c in fake_slack.posts(thread_ts=thread)))
        await settle(bot)
    waiting = db_rows(db_path, "SELECT content FROM messages WHERE reply_state = 'waiting'")
    assert [r["content"] for r in waiting] == ["where were we?"]
