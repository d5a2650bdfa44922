"""Slack's 3-second acks, access on buttons, shutdown and failures: what Slack sees when things are slow or wrong."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

import bots.slack.adapter as adapter_module
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads, post_event, signed_headers
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows
from tests.slack.conftest import SIGNING_SECRET, SlackBotFactory
from tests.slack.test_slack_socket_mode import card_posts, card_value, replies_in, settle


async def _orphaned_thread_with_a_card(slack_bot: SlackBotFactory, fake: FakeSlack, **overrides: object) -> str:
    """A thread answered once, then a restart and a new message: a card waits. Returns the thread's ts."""
    mention = Payloads.mention("we chose Postgres")
    async with slack_bot(**overrides) as bot:
        await fake.send(Payloads.event_body(mention))
        await wait_until(lambda: len(replies_in(fake, mention["ts"])) == 1)
        await settle(bot)
    return str(mention["ts"])


async def test_a_click_is_acknowledged_at_once_even_when_slack_is_slow_to_update_the_card(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    thread = await _orphaned_thread_with_a_card(slack_bot, fake_slack)
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(Payloads.message("which database?", thread_ts=thread)))
        await wait_until(lambda: len(card_posts(fake_slack)) == 1)
        fake_slack.delays_s["chat.update"] = 2.0
        fake_llm.reply("Fresh start: which database do you mean?")
        envelope = await fake_slack.send(fake_slack.click_on(card_value(fake_slack, "fresh")), kind="interactive")
        await wait_until(lambda: envelope in fake_slack.acked_at)
        assert fake_slack.acked_at[envelope] - fake_slack.sent_at[envelope] < 0.5
        fake_slack.delays_s.clear()
        await wait_until(lambda: "Fresh start" in " ".join(replies_in(fake_slack, thread)), timeout=10)
        await settle(bot)
    assert [tuple(r) for r in db_rows(db_path, "SELECT state, resolved_by_name FROM cards")] == [("fresh", "Alice")]


async def test_an_event_is_acknowledged_only_once_its_message_is_in_the_log(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    mention = Payloads.mention("log me first")
    logged_when_acked: list[list[str]] = []
    fake_slack.on_ack = lambda _: logged_when_acked.append(
        [r["content"] for r in db_rows(db_path, "SELECT content FROM messages WHERE role = 'user'")]
    )
    fake_slack.delays_s["users.info"] = 0.5  # the listener is still working when an early ack would go out
    async with slack_bot() as bot:
        envelope = await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: envelope in fake_slack.acked_at)
        assert logged_when_acked == [["log me first"]]
        assert 0.45 < fake_slack.acked_at[envelope] - fake_slack.sent_at[envelope] < 2.5
        await settle(bot)


async def test_a_clicker_outside_the_allowlist_is_told_privately_and_the_card_stays(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    allow = {"slack_allowed_users": frozenset({"UALICE"})}
    thread = await _orphaned_thread_with_a_card(slack_bot, fake_slack, **allow)
    async with slack_bot(**allow) as bot:
        await fake_slack.send(Payloads.event_body(Payloads.message("and now?", thread_ts=thread)))
        await wait_until(lambda: len(card_posts(fake_slack)) == 1)
        await fake_slack.send(
            Payloads.click(card_value(fake_slack, "fresh"), user="UBOB", thread_ts=thread), kind="interactive"
        )
        await wait_until(lambda: len(fake_slack.calls_to("chat.postEphemeral")) == 1)
        await settle(bot)
        assert [tuple(r) for r in db_rows(db_path, "SELECT state FROM cards")] == [("pending",)]
        fake_llm.reply("Alice's fresh start.")
        await fake_slack.send(Payloads.click(card_value(fake_slack, "fresh"), thread_ts=thread), kind="interactive")
        await wait_until(lambda: "Alice's fresh start." in replies_in(fake_slack, thread))
    note = fake_slack.calls_to("chat.postEphemeral")[0].params
    assert (note["user"], note["channel"], note["thread_ts"]) == ("UBOB", "C1", thread)
    assert "not available to you" in note["text"]
    assert [tuple(r) for r in db_rows(db_path, "SELECT state, resolved_by_name FROM cards")] == [("fresh", "Alice")]


async def test_stopping_lets_a_reply_in_flight_finish_without_reconnecting(
    slack_bot: SlackBotFactory,
    fake_slack: FakeSlack,
    fake_llm: FakeLLM,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The reply streams for about 2 s, longer than the Socket Mode client's connection check (10 s in production).
    monkeypatch.setattr(adapter_module, "SOCKET_PING_INTERVAL_S", 0.3)
    fake_llm.chunk_chars = 5
    fake_llm.chunk_delay_s = 0.1
    fake_llm.reply("A reply that is still streaming when the bot is asked to stop, and it finishes anyway.")
    mention = Payloads.mention("talk slowly")
    async with slack_bot():
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(fake_slack.posts(thread_ts=mention["ts"])) == 1)
    assert fake_slack.connected == 0
    assert len(fake_slack.calls_to("apps.connections.open")) == 1, "reconnected while stopping"
    assert replies_in(fake_slack, mention["ts"]) == [
        "A reply that is still streaming when the bot is asked to stop, and it finishes anyway."
    ]
    states = db_rows(db_path, "SELECT role, reply_state FROM messages ORDER BY id")
    assert [r["role"] for r in states] == ["user", "assistant"] and states[0]["reply_state"] == "answered"


async def test_a_model_failure_leaves_no_placeholder_and_one_friendly_note(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.fail_always(400)
    mention = Payloads.mention("this will fail")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(fake_slack.posts(thread_ts=mention["ts"])) == 2)
        await settle(bot)
    deleted = {c.params["ts"] for c in fake_slack.calls_to("chat.delete")}
    visible = [
        fake_slack.final_text(c.params["_ts"])
        for c in fake_slack.posts(thread_ts=mention["ts"])
        if c.params["_ts"] not in deleted
    ]
    assert len(visible) == 1 and "Thinking" not in visible[0]
    assert 0 < len(visible[0]) < 200 and "sk-test" not in visible[0] and "400" not in visible[0]
    assert [r["reply_state"] for r in db_rows(db_path, "SELECT reply_state FROM messages")] != ["answered"]


async def test_http_mode_answers_slacks_url_verification_challenge(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    async with slack_bot(http=True) as bot:
        raw = json.dumps({"token": "t", "challenge": "c-123", "type": "url_verification"})
        headers = {"Content-Type": "application/json", **signed_headers(SIGNING_SECRET, raw)}
        async with aiohttp.ClientSession() as session, session.post(bot.events_url, data=raw, headers=headers) as r:
            assert r.status == 200
            assert "c-123" in await r.text()


async def test_http_mode_dm_thread_and_follow_up(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply("Hello in DM.")
    fake_llm.reply("Still in the DM thread.")
    async with slack_bot(http=True) as bot:
        first = Payloads.dm("hi there")
        assert await post_event(bot.events_url, SIGNING_SECRET, Payloads.event_body(first)) == 200
        await wait_until(lambda: replies_in(fake_slack, first["ts"]) == ["Hello in DM."])
        await settle(bot)
        follow = Payloads.dm("and again", thread_ts=first["ts"])
        assert await post_event(bot.events_url, SIGNING_SECRET, Payloads.event_body(follow)) == 200
        await wait_until(lambda: len(replies_in(fake_slack, first["ts"])) == 2)
    assert replies_in(fake_slack, first["ts"])[1] == "Still in the DM thread."
    threads = db_rows(db_path, "SELECT channel, thread FROM threads")
    assert [tuple(r) for r in threads] == [("D1", first["ts"])]


async def test_a_dropped_socket_is_reopened_and_events_flow_again(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    async with slack_bot() as bot:
        await fake_slack.drop_connections()
        await wait_until(lambda: len(fake_slack.calls_to("apps.connections.open")) == 2 and fake_slack.connected == 1)
        mention = Payloads.mention("are you still there?")
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 1)
        await settle(bot)


async def test_http_mode_stop_refuses_new_requests_and_finishes_the_reply_in_flight(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.chunk_chars = 5
    fake_llm.chunk_delay_s = 0.05
    fake_llm.reply("Finishing this answer while the bot shuts down.")
    mention = Payloads.mention("slow one")
    async with slack_bot(http=True) as bot:
        assert await post_event(bot.events_url, SIGNING_SECRET, Payloads.event_body(mention)) == 200
        await wait_until(lambda: len(fake_slack.posts(thread_ts=mention["ts"])) == 1)
        stopping = asyncio.create_task(bot.adapter.stop())
        await asyncio.sleep(0.05)
        with pytest.raises(aiohttp.ClientConnectionError):
            await post_event(bot.events_url, SIGNING_SECRET, Payloads.event_body(Payloads.mention("too late")))
        assert not stopping.done(), "stop() returned before the reply in flight finished"
        await stopping
    assert replies_in(fake_slack, mention["ts"]) == ["Finishing this answer while the bot shuts down."]
    assert [r["content"] for r in db_rows(db_path, "SELECT content FROM messages WHERE role = 'user'")] == ["slow one"]
