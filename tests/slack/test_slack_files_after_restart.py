"""Slack files a restart left unread: the waiting message is fetched again (``conversations.replies`` narrowed to its
ts) for fresh ``url_private`` sources, then read and transcribed as a live turn would.

The real slack-bolt app in Socket Mode against the loopback Slack, restarted in-process (the same database, a new
router and app): a message with files arrives while its thread waits on its "Where were we?" card, the bot stops,
and the next run answers the message after the card. The SIGKILL version is in ``tests/test_kill_files.py``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows
from tests.slack.conftest import SlackBotFactory
from tests.slack.test_slack_attachments import with_files
from tests.slack.test_slack_socket_mode import card_posts, card_value, replies_in, settle
from tests.slack.test_slack_voice import CLIP, VOICE, audio_clip

SAID = "the staging database moves to port 6543 on Friday"


async def left_waiting(slack_bot: SlackBotFactory, fake: FakeSlack, files: list[dict[str, Any]]) -> tuple[str, str]:
    """A thread answered once, then a run that logs a message with ``files`` behind the thread's card (Slack keeps
    the message) and stops before anyone clicks it. The thread's ts and the message's."""
    mention = Payloads.mention("release planning")
    root = mention["ts"]
    async with slack_bot() as bot:
        await fake.send(Payloads.event_body(mention))
        await wait_until(lambda: len(replies_in(fake, root)) == 1, what="the first answer")
        await settle(bot)
    message = with_files(Payloads.message("here you go", thread_ts=root), *files)
    fake.thread_messages.setdefault(("C1", root), []).append(message)
    async with slack_bot(**VOICE) as bot:
        await fake.send(Payloads.event_body(message))
        await wait_until(lambda: len(card_posts(fake)) == 1, what="the card")
        await settle(bot)
    return root, message["ts"]


async def click(fake: FakeSlack, root: str, action: str) -> None:
    card = card_posts(fake)[0]
    await fake.send(
        Payloads.click(card_value(fake, action), message_ts=str(card["_ts"]), thread_ts=root), kind="interactive"
    )


def fetched_again(fake: FakeSlack, ts: str) -> int:
    return len([c for c in fake.calls_to("conversations.replies") if c.params.get("oldest") == ts])


async def test_an_audio_clip_and_a_file_left_waiting_by_a_restart_are_fetched_again_and_read_at_catch_up(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply("Hello.")
    clip = audio_clip(fake_slack)
    notes = fake_slack.file("notes.txt", b"alpha", mimetype="text/plain")
    root, ts = await left_waiting(slack_bot, fake_slack, [clip, notes])
    assert fake_slack.file_downloads == [] and fake_llm.transcriptions.received == []
    fake_llm.transcriptions.reply(SAID)
    async with slack_bot(**VOICE) as bot:
        fake_llm.reply("SUMMARY: Alice is planning a release.")
        fake_llm.reply("Port 6543 from Friday, noted.")
        await click(fake_slack, root, "catch_up")
        await wait_until(lambda: "Port 6543 from Friday, noted." in replies_in(fake_slack, root), what="the answer")
        await settle(bot)
    assert fetched_again(fake_slack, ts) == 1
    assert sorted(fake_slack.file_downloads) == [(clip["id"], 200), (notes["id"], 200)]  # with the bot token
    [heard] = fake_llm.transcriptions.received
    assert (heard.filename, heard.data) == ("audio_message.m4a", CLIP)
    assert fake_llm.requests[-1].body["messages"][-1]["content"] == (
        f"Alice: here you go\n[voice message, transcribed] {SAID}\n"
        f"[attachment: audio_message.m4a (audio/mp4, {len(CLIP)} bytes), audio: transcribed in this message]\n"
        "[attachment: notes.txt (text/plain, 5 bytes)]\nalpha"
    )
    [row] = db_rows(db_path, f"SELECT transcript, attachments_json FROM messages WHERE platform_message_id = '{ts}'")
    assert row["transcript"] == SAID
    assert [a["used"] for a in json.loads(row["attachments_json"])] == ["transcribed", "inlined"]


@pytest.mark.parametrize("slack", ["deleted it meanwhile", "refuses to show it"])
async def test_a_file_whose_message_cannot_be_fetched_again_is_named_as_left_unread(
    slack_bot: SlackBotFactory,
    fake_slack: FakeSlack,
    fake_llm: FakeLLM,
    caplog: pytest.LogCaptureFixture,
    slack: str,
) -> None:
    caplog.set_level(logging.INFO)
    fake_llm.reply("Hello.")
    notes = fake_slack.file("notes.txt", b"alpha", mimetype="text/plain")
    root, ts = await left_waiting(slack_bot, fake_slack, [notes])
    if slack == "deleted it meanwhile":
        fake_slack.thread_messages[("C1", root)].clear()
    else:
        fake_slack.errors["conversations.replies"] = ["missing_scope"]
    async with slack_bot() as bot:
        fake_llm.reply("I could not open them.")
        await click(fake_slack, root, "fresh")
        await wait_until(lambda: "I could not open them." in replies_in(fake_slack, root), what="the answer")
        await settle(bot)
    assert "I could not read notes.txt (the bot restarted before reading it)." in replies_in(fake_slack, root)
    assert (
        "[attachment: notes.txt (text/plain, 5 bytes), could not be read: the bot restarted before reading it]"
        in fake_llm.requests[-1].prompt_text
    )
    assert fetched_again(fake_slack, ts) == 1 and fake_slack.file_downloads == []
    expected = "is no longer on its platform" if slack == "deleted it meanwhile" else "missing_scope"
    assert expected in caplog.text
