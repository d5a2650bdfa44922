"""Slack when the network, the payloads or the channels are not the friendly kind (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

import bots.slack.reading.names as names_module
from bots.router.bounded import BoundedCache
from bots.slack import SlackAdapter
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import TEAM, FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows
from tests.slack.conftest import SlackBotFactory
from tests.slack.test_slack_acks_and_failures import _orphaned_thread_with_a_card
from tests.slack.test_slack_socket_mode import card_posts, card_value, replies_in, settle


async def test_a_card_button_pressed_in_another_thread_is_refused_privately(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    thread = await _orphaned_thread_with_a_card(slack_bot, fake_slack)
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(Payloads.message("which database?", thread_ts=thread)))
        await wait_until(lambda: len(card_posts(fake_slack)) == 1)
        other = Payloads.ts()  # the same button value, shown in some other thread
        await fake_slack.send(
            Payloads.click(card_value(fake_slack, "fresh"), thread_ts=other, channel="C2"), kind="interactive"
        )
        await wait_until(lambda: len(fake_slack.calls_to("chat.postEphemeral")) == 1)
        await settle(bot)
        assert [r["state"] for r in db_rows(db_path, "SELECT state FROM cards")] == ["pending"]
        fake_llm.reply("Fresh: which one?")
        await fake_slack.send(Payloads.click(card_value(fake_slack, "fresh"), thread_ts=thread), kind="interactive")
        await wait_until(lambda: "Fresh: which one?" in replies_in(fake_slack, thread))
        await settle(bot)
    note = fake_slack.calls_to("chat.postEphemeral")[0].params
    assert (note["channel"], note["thread_ts"], note["text"]) == ("C2", other, "That card is no longer active.")
    assert [r["state"] for r in db_rows(db_path, "SELECT state FROM cards")] == ["fresh"]


async def test_a_card_click_whose_thread_slack_does_not_say_is_refused_not_taken_for_the_cards_thread(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    thread = await _orphaned_thread_with_a_card(slack_bot, fake_slack)
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(Payloads.message("which database?", thread_ts=thread)))
        await wait_until(lambda: len(card_posts(fake_slack)) == 1)
        answered = len(replies_in(fake_slack, thread))
        card_ts = card_posts(fake_slack)[0]["_ts"]
        await fake_slack.send(Payloads.click(card_value(fake_slack, "fresh")), kind="interactive")  # no thread_ts
        await wait_until(lambda: len(fake_slack.calls_to("chat.postEphemeral")) == 1, what="the refusal")
        await settle(bot)
        assert not [c for c in fake_slack.calls_to("chat.update") if c.params["ts"] == card_ts]
        assert len(replies_in(fake_slack, thread)) == answered
    assert len(fake_slack.acks) == len(fake_slack.envelopes)
    assert fake_slack.calls_to("chat.postEphemeral")[0].params["text"] == "That card is no longer active."
    assert [r["state"] for r in db_rows(db_path, "SELECT state FROM cards")] == ["pending"]


async def test_a_network_error_in_the_name_lookup_costs_the_name_not_the_message(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_slack.disconnects["users.info"] = 10  # more than slack_sdk's one retry of a dropped connection
    fake_llm.reply("Answered anyway.")
    mention = Payloads.mention("are you there?")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: replies_in(fake_slack, mention["ts"]) == ["Answered anyway."])
        await settle(bot)
    assert [tuple(r) for r in db_rows(db_path, "SELECT author_name, content FROM messages WHERE role = 'user'")] == [
        ("UALICE", "are you there?")
    ]
    assert fake_llm.requests[0].body["messages"][-1]["content"] == "UALICE: are you there?"
    assert all(c.params.get("_status") == "disconnected" for c in fake_slack.calls_to("users.info"))


async def test_a_network_error_in_the_clickers_name_lookup_does_not_lose_the_click(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    thread = await _orphaned_thread_with_a_card(slack_bot, fake_slack)
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(Payloads.message("which database?", thread_ts=thread)))
        await wait_until(lambda: len(card_posts(fake_slack)) == 1)
        fake_slack.disconnects["users.info"] = 10  # Bob's name was never looked up in this process
        fake_llm.reply("Fresh start, Bob.")
        await fake_slack.send(
            Payloads.click(card_value(fake_slack, "fresh"), user="UBOB", thread_ts=thread), kind="interactive"
        )
        await wait_until(lambda: "Fresh start, Bob." in replies_in(fake_slack, thread))
        await settle(bot)
    assert [tuple(r) for r in db_rows(db_path, "SELECT state, resolved_by_name FROM cards")] == [("fresh", "UBOB")]


@pytest.mark.parametrize("fault", ["message_not_found", "disconnected"])
async def test_a_reply_whose_update_fails_mid_stream_continues_in_a_new_message(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path, fault: str
) -> None:
    reply = "A careful answer that streams for a while before it is complete."
    fake_llm.reply(reply)
    fake_llm.chunk_chars, fake_llm.chunk_delay_s = 8, 0.02
    if fault == "disconnected":
        fake_slack.disconnects["chat.update"] = 2  # slack_sdk retries a dropped connection once
    else:
        fake_slack.errors["chat.update"] = [fault]  # someone deleted the half-written reply
    mention = Payloads.mention("explain")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: reply in replies_in(fake_slack, mention["ts"]))
        await settle(bot)
    placeholder, anew = fake_slack.posts(thread_ts=mention["ts"])
    assert fake_slack.final_text(anew.params["_ts"]) == reply
    # A message Slack still has (the update was lost to the network) is removed: no stale "Thinking…".
    deleted = [c.params["ts"] for c in fake_slack.calls_to("chat.delete")]
    assert deleted == ([placeholder.params["_ts"]] if fault == "disconnected" else [])
    assert fake_slack.calls_to("chat.postEphemeral") == []
    rows = db_rows(db_path, "SELECT role, content, platform_message_id FROM messages ORDER BY id")
    assert [(r["role"], r["content"]) for r in rows] == [("user", "explain"), ("assistant", reply)]
    assert not rows[1]["platform_message_id"].startswith("local-")


async def test_a_renamed_user_is_called_by_the_new_name_once_the_cached_one_expires(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    now = [0.0]
    mention = Payloads.mention("first")
    async with slack_bot() as bot:
        bot.adapter.names.cache = BoundedCache(
            max_entries=10, ttl_s=names_module.DISPLAY_NAME_TTL_S, clock=lambda: now[0]
        )
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 1)
        await settle(bot)
        fake_slack.users["UALICE"] = "Alice Cooper"  # she renamed herself in Slack
        now[0] += names_module.DISPLAY_NAME_TTL_S - 1
        await fake_slack.send(Payloads.event_body(Payloads.message("cached", thread_ts=mention["ts"])))
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 2)
        await settle(bot)
        now[0] += 1
        await fake_slack.send(Payloads.event_body(Payloads.message("expired", thread_ts=mention["ts"])))
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 3)
        await settle(bot)
    rows = db_rows(db_path, "SELECT author_name, content FROM messages WHERE role = 'user' ORDER BY id")
    assert [tuple(r) for r in rows] == [("Alice", "first"), ("Alice", "cached"), ("Alice Cooper", "expired")]
    assert len(fake_slack.calls_to("users.info")) == 2


def test_the_display_name_cache_is_bounded_and_expires(make_settings: MakeSettings) -> None:
    settings = make_settings(slack_bot_token="xoxb-test", slack_app_token="xapp-test")
    adapter = SlackAdapter(settings=settings, router=None)  # type: ignore[arg-type]
    names = adapter.names.cache
    for n in range(names_module.DISPLAY_NAMES_MAX + 100):
        names.put(f"U{n}", f"user {n}")
    assert len(names) == names_module.DISPLAY_NAMES_MAX


async def test_in_a_shared_channel_an_external_users_follow_up_joins_the_same_thread(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_slack.users["UERIN"] = "Erin"  # a member of the partner org, TPARTNER
    fake_llm.reply("Noted: the contract renews in May.")
    fake_llm.reply("Yes, Erin: May.")
    mention = Payloads.mention("the contract renews in May", channel="CSHARED", team=TEAM) | {"user_team": TEAM}
    external = Payloads.message(
        "can you confirm the month?", user="UERIN", channel="CSHARED", thread_ts=mention["ts"], team="TPARTNER"
    ) | {"user_team": "TPARTNER", "source_team": "TPARTNER"}
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.shared_channel_body(mention, host_team="TPARTNER"))
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 1)
        await settle(bot)
        await fake_slack.send(Payloads.shared_channel_body(external, host_team="TPARTNER"))
        await wait_until(lambda: replies_in(fake_slack, mention["ts"])[-1:] == ["Yes, Erin: May."])
        await settle(bot)
    threads = db_rows(db_path, "SELECT workspace, channel, thread FROM threads")
    assert [tuple(r) for r in threads] == [(TEAM, "CSHARED", mention["ts"])]
    users = db_rows(db_path, "SELECT author_name, content FROM messages WHERE role = 'user' ORDER BY id")
    assert [tuple(r) for r in users] == [
        ("Alice", "the contract renews in May"),
        ("Erin", "can you confirm the month?"),
    ]
