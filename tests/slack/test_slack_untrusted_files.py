"""Slack files the bot must not trust: a ``url_private`` off Slack's file hosts, a redirect, a malformed entry.

The real slack-bolt app against the loopback Slack (its file server is the configured SLACK_API_URL's host), a
second loopback address (127.0.0.2) standing for a metadata service or a third party, the loopback model.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.elsewhere import SECRET, Elsewhere
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads, post_event
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows
from tests.slack.conftest import SIGNING_SECRET, SlackBotFactory
from tests.slack.test_slack_attachments import bot_texts, logged_attachments, with_files

TOKEN = "xoxb-test-token"


async def test_a_file_whose_url_names_another_host_is_named_to_the_model_and_that_host_gets_nothing(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with Elsewhere() as metadata:
        external = {
            "id": "F0EXTERNAL",
            "name": "credentials.txt",
            "mimetype": "text/plain",
            "size": 120,
            "is_external": True,
            "url_private": metadata.url(),
            "url_private_download": metadata.url(),
        }
        async with slack_bot() as bot:
            mention = with_files(Payloads.mention("what does this say?"), external)
            await fake_slack.send(Payloads.event_body(mention))
            await wait_until(lambda: len(fake_llm.requests) == 1, what="the model asked", timeout=15)
            await bot.router.idle()
    assert metadata.requests == []  # no request, so no token
    prompt = fake_llm.requests[-1].prompt_text
    assert (
        "[attachment: credentials.txt (text/plain, 120 bytes), not read: it is not stored on Slack's file servers, "
        "so it was not downloaded]" in prompt
    )
    assert SECRET not in prompt and metadata.url() not in prompt
    assert [a["used"] for a in logged_attachments(db_path)] == ["noted"]


async def test_a_redirect_from_the_file_host_to_another_host_is_not_followed(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    async with Elsewhere() as third_party:
        doc = fake_slack.file("plan.txt", b"step one", mimetype="text/plain")
        fake_slack.file_redirects[doc["id"]] = third_party.url("/plan.txt")
        async with slack_bot() as bot:
            mention = with_files(Payloads.mention("read my plan"), doc)
            await fake_slack.send(Payloads.event_body(mention))
            await wait_until(lambda: len(fake_llm.requests) == 1, what="the model asked", timeout=15)
            await bot.router.idle()
    assert fake_slack.file_downloads == [(doc["id"], 302)]
    assert third_party.requests == []
    assert bot_texts(fake_slack, mention["ts"])[0] == (
        "I could not read plan.txt (the download was redirected away from Slack's file servers)."
    )
    assert SECRET not in fake_llm.requests[-1].prompt_text


async def test_a_redirect_within_the_file_host_is_followed_without_the_token(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    moved = fake_slack.file("plan.txt", b"step one", mimetype="text/plain")
    target = fake_slack.file("plan-v2.txt", b"step two", mimetype="text/plain")
    fake_slack.file_redirects[moved["id"]] = target["url_private"]
    async with slack_bot() as bot:
        mention = with_files(Payloads.mention("read my plan"), moved)
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(fake_llm.requests) == 1, what="the model asked", timeout=15)
        await bot.router.idle()
    # The second hop is on an allowed host, but carries no token: the file server refuses it.
    assert fake_slack.file_downloads == [(moved["id"], 302), (target["id"], 401)]
    assert "step two" not in fake_llm.requests[-1].prompt_text


async def test_malformed_file_entries_get_a_200_the_message_is_logged_once_and_the_files_named_unreadable(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    good = fake_slack.file("notes.txt", b"the launch is on Friday", mimetype="text/plain")
    odd_entries = [
        good,
        {"name": "size-in-words.txt", "mimetype": "text/plain", "size": "12kb", "url_private": good["url_private"]},
        {"name": "size-object.txt", "size": {}, "url_private": good["url_private"]},
        {"name": "infinite.bin", "size": float("inf")},
        {"name": "not-a-number.bin", "size": float("nan")},
        {"name": 7, "mimetype": ["text/plain"], "size": -1},
        5,
    ]
    async with slack_bot(http=True) as bot:
        mention = with_files(Payloads.mention("what do these say?"), *odd_entries)
        assert await post_event(bot.events_url, SIGNING_SECRET, Payloads.event_body(mention)) == 200
        await wait_until(lambda: len(bot_texts(fake_slack, mention["ts"])) == 2, what="the note and the answer")
        await bot.router.idle()
        follow_up = Payloads.message("and this?", thread_ts=mention["ts"]) | {"files": 5, "subtype": "file_share"}
        assert await post_event(bot.events_url, SIGNING_SECRET, Payloads.event_body(follow_up)) == 200
        await wait_until(lambda: len(bot_texts(fake_slack, mention["ts"])) == 4, what="the second note and answer")
        await bot.router.idle()
    rows = db_rows(db_path, "SELECT platform_message_id FROM messages WHERE role = 'user' ORDER BY id")
    assert [r[0] for r in rows] == [mention["ts"], follow_up["ts"]]  # each logged exactly once
    first_prompt = next(r.prompt_text for r in fake_llm.requests if "what do these say?" in r.prompt_text)
    assert "the launch is on Friday" in first_prompt  # the good file is still read
    unreadable = "could not be read: the platform described it in a way the bot cannot read]"
    assert first_prompt.count(unreadable) == 6
    assert fake_llm.requests[-1].body["messages"][-1]["content"] == (
        f"Alice: and this?\n[attachment: file (application/octet-stream, 0 bytes), {unreadable}"  # files: 5
    )
    assert fake_slack.file_downloads == [(good["id"], 200)]  # an unreadable file is never fetched
    assert [a["used"] for a in logged_attachments(db_path)] == ["inlined"] + ["refused"] * 7
