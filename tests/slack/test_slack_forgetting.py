"""Slack deletions reach every copy: ``message_deleted`` for thread replies, in a live thread and an orphaned one."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bots.cli import forget
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows
from tests.slack.conftest import SlackBotFactory
from tests.slack.test_slack_commands import private, shortcut
from tests.slack.test_slack_socket_mode import card_posts, card_value, replies_in, settle


async def test_a_deleted_thread_reply_is_gone_from_the_live_session_and_from_the_catch_up(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply_with(lambda body: "Noted.")
    mention = Payloads.mention("release planning")
    root = mention["ts"]
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(replies_in(fake_slack, root)) == 1)
        password = Payloads.message("my password is hunter2", thread_ts=root)
        await fake_slack.send(Payloads.event_body(password))
        await wait_until(lambda: len(replies_in(fake_slack, root)) == 2)
        await settle(bot)
        await fake_slack.send(Payloads.event_body(Payloads.deleted(ts=password["ts"], thread_ts=root)))
        await wait_until(lambda: len(db_rows(db_path, "SELECT 1 FROM erasures")) == 1)
        await fake_slack.send(Payloads.event_body(Payloads.message("what is left?", thread_ts=root, user="UBOB")))
        await wait_until(lambda: len(replies_in(fake_slack, root)) == 3)
        await settle(bot)
        assert "hunter2" not in fake_llm.requests[-1].prompt_text
    async with slack_bot() as bot:
        secret = Payloads.message("the door code is ghost-42", thread_ts=root, user="UBOB")
        await fake_slack.send(Payloads.event_body(secret))
        await wait_until(lambda: len(card_posts(fake_slack)) == 1)
        # The reply is deleted while its thread is orphaned and the card waits.
        await fake_slack.send(Payloads.event_body(Payloads.deleted(ts=secret["ts"], thread_ts=root)))
        await wait_until(lambda: len(db_rows(db_path, "SELECT 1 FROM erasures")) == 2)
        await fake_slack.send(Payloads.event_body(Payloads.message("still there?", thread_ts=root)))
        await settle(bot)
        fake_llm.reply("SUMMARY: release planning.")
        fake_llm.reply("Back with you.")
        card = card_posts(fake_slack)[0]
        await fake_slack.send(
            Payloads.click(card_value(fake_slack, "catch_up"), message_ts=str(card["_ts"]), thread_ts=root),
            kind="interactive",
        )
        await wait_until(lambda: "Back with you." in replies_in(fake_slack, root))
    summary = next(r for r in fake_llm.requests if not r.stream).prompt_text
    assert "release planning" in summary
    for text in ("hunter2", "ghost-42"):
        assert text not in summary and text not in fake_llm.requests[-1].prompt_text
    assert fake_llm.requests[-1].body["messages"][-1]["content"] == "Alice: still there?"


def _bytes_of(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


async def test_a_deleted_mention_takes_its_thread_title_out_of_the_export_and_the_database_file(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply_with(lambda body: "Noted.")
    mention = Payloads.mention("my password is hunter2, rotate it")
    root = mention["ts"]
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(replies_in(fake_slack, root)) == 1)
        await settle(bot)
        [thread] = db_rows(db_path, "SELECT title FROM threads")
        assert thread["title"] == "my password is hunter2, rotate it"  # made from the mention
        assert b"hunter2" in _bytes_of(db_path.parent)
        await fake_slack.send(Payloads.event_body(Payloads.deleted(ts=root, thread_ts=root)))
        await wait_until(lambda: len(db_rows(db_path, "SELECT 1 FROM erasures")) == 1)
        assert db_rows(db_path, "SELECT title FROM threads")[0]["title"] is None
        await shortcut(fake_slack, "tk_export", root, user="UBOB")
        await private(fake_slack, user="UBOB")
        await settle(bot)
        # While the bot still has the database open (its -wal and -shm exist)...
        assert b"hunter2" not in _bytes_of(db_path.parent)
    [(_, filename, content)] = fake_slack.shared_files()
    assert filename == f"thread-slack-{root.replace('.', '')}.md"  # from ids, never from the text
    assert "hunter2" not in content.decode() and "*(deleted)*" in content.decode()
    # ...and once it has closed it.
    assert b"hunter2" not in _bytes_of(db_path.parent)


async def test_forgetting_the_newest_thread_beside_the_bot_leaves_the_next_new_thread_alone(
    slack_bot: SlackBotFactory,
    fake_slack: FakeSlack,
    fake_llm: FakeLLM,
    db_path: Path,
    make_settings: MakeSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The journal row of the forgotten thread names its id; the next new thread must not get that id, or the
    running bot drops that thread's state when it reads the row, and its next question waits behind a card."""
    caplog.set_level(logging.INFO, logger="bots.router.forgetting")
    fake_llm.reply_with(lambda body: "Noted.")
    old, new = Payloads.mention("an old plan"), Payloads.mention("a new plan")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(old))
        await wait_until(lambda: len(replies_in(fake_slack, old["ts"])) == 1)
        await settle(bot)
        assert await forget(make_settings(), old["ts"]) == 0  # the CLI beside the running bot
        await fake_slack.send(Payloads.event_body(new))  # before the bot has read the journal
        await wait_until(lambda: len(replies_in(fake_slack, new["ts"])) == 1)
        await wait_until(lambda: "was forgotten; its live session and state are dropped" in caplog.text)
        await fake_slack.send(Payloads.event_body(Payloads.message("and then?", thread_ts=new["ts"])))
        await wait_until(lambda: len(replies_in(fake_slack, new["ts"])) == 2, what="an answer, not a card")
        await settle(bot)
    assert card_posts(fake_slack) == []
    assert old["ts"] in caplog.text and f"'{new['ts']}') was forgotten" not in caplog.text
