"""Slack in HTTP mode: signed requests to POST /slack/events, as Slack sends them, and start-up checks."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from bots.app import open_router
from bots.config import ConfigError
from bots.slack import SlackAdapter
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads, post_event, post_interaction, signed_headers
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows
from tests.slack.conftest import SIGNING_SECRET, SlackBotFactory
from tests.slack.test_slack_socket_mode import card_posts, card_value, replies_in


async def test_http_mode_mention_restart_card_and_catch_up(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    mention = Payloads.mention("the deadline is May 5")
    async with slack_bot(http=True) as bot:
        async with (
            aiohttp.ClientSession() as session,
            session.get(bot.events_url.replace("/slack/events", "/healthz")) as r,
        ):
            assert r.status == 200
        assert await post_event(bot.events_url, SIGNING_SECRET, Payloads.event_body(mention)) == 200
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 1)
        await bot.router.idle()
    async with slack_bot(http=True) as bot:
        question = Payloads.message("when is the deadline?", thread_ts=mention["ts"])
        assert await post_event(bot.events_url, SIGNING_SECRET, Payloads.event_body(question)) == 200
        await wait_until(lambda: len(card_posts(fake_slack)) == 1)
        fake_llm.reply("SUMMARY: deadline May 5.")
        fake_llm.reply("May 5.")
        click = Payloads.click(card_value(fake_slack, "catch_up"), thread_ts=mention["ts"])
        assert await post_interaction(bot.events_url, SIGNING_SECRET, click) == 200
        await wait_until(lambda: "May 5." in replies_in(fake_slack, mention["ts"]))
    assert "the deadline is May 5" in next(r for r in fake_llm.requests if not r.stream).prompt_text


async def test_a_bad_signature_is_refused_with_401_and_nothing_is_logged(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with slack_bot(http=True) as bot:
        body = Payloads.event_body(Payloads.mention("forged"))
        assert await post_event(bot.events_url, SIGNING_SECRET, body, bad_signature=True) == 401
        stale = json.dumps(body)
        headers = {"Content-Type": "application/json", **signed_headers(SIGNING_SECRET, stale, timestamp=1_000_000)}
        async with aiohttp.ClientSession() as session, session.post(bot.events_url, data=stale, headers=headers) as r:
            assert r.status == 401  # answered, so handled: nothing can still be on its way to the router
        await bot.router.idle()
    assert db_rows(db_path, "SELECT 1 FROM messages") == []
    assert fake_slack.posts() == [] and fake_llm.requests == []


async def test_malformed_payloads_do_not_crash_the_bot(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    async with slack_bot(http=True) as bot:
        broken_bodies = [
            Payloads.event_body({"type": "app_mention", "text": "no channel, no user"}),
            Payloads.event_body({"type": "message", "subtype": "message_deleted", "channel": "C1"}),
            Payloads.event_body({"type": "message", "subtype": "message_changed", "channel": "C1", "message": "x"}),
            {"type": "event_callback"},
        ]
        for body in broken_bodies:
            assert await post_event(bot.events_url, SIGNING_SECRET, body) in (200, 400, 404)
        garbage = "payload=%7Bnot-json"
        headers = {"Content-Type": "application/x-www-form-urlencoded", **signed_headers(SIGNING_SECRET, garbage)}
        async with aiohttp.ClientSession() as session, session.post(bot.events_url, data=garbage, headers=headers) as r:
            assert r.status < 500
        assert await post_interaction(bot.events_url, SIGNING_SECRET, Payloads.click("tk-card:999:catch_up")) == 200
        assert await post_interaction(bot.events_url, SIGNING_SECRET, Payloads.click("someone-elses-button")) == 200
        mention = Payloads.mention("still alive?")
        assert await post_event(bot.events_url, SIGNING_SECRET, Payloads.event_body(mention)) == 200
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 1)
    stale = fake_slack.calls_to("chat.postEphemeral")
    assert len(stale) == 1 and "no longer active" in stale[0].params["text"]


async def test_slack_retries_with_the_same_event_id_give_one_row_and_one_reply(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    mention = Payloads.mention("retry me")
    body = Payloads.event_body(mention)
    async with slack_bot(http=True) as bot:
        assert await post_event(bot.events_url, SIGNING_SECRET, body) == 200
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 1)
        for attempt in (1, 2, 3):
            assert (
                await post_event(bot.events_url, SIGNING_SECRET, body, retry_num=attempt) == 200
            )  # after the listener
        await bot.router.idle()
    assert len(replies_in(fake_slack, mention["ts"])) == 1
    assert len(db_rows(db_path, "SELECT 1 FROM messages WHERE role = 'user'")) == 1


@pytest.mark.parametrize(
    ("error", "expected"),
    [("invalid_auth", "rejected SLACK_BOT_TOKEN"), ("missing_scope", "lacks the scope(s) chat:write")],
)
async def test_a_wrong_token_or_a_missing_scope_is_a_clear_start_up_error(
    make_settings: MakeSettings, fake_slack: FakeSlack, error: str, expected: str
) -> None:
    fake_slack.auth_error = error
    settings = make_settings(slack_bot_token="xoxb-wrong", slack_app_token="xapp-x", slack_api_url=fake_slack.api_url)
    async with open_router(settings) as router:
        with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")) as caught:
            await SlackAdapter(settings=settings, router=router).start()
    assert "xoxb-wrong" not in str(caught.value)


async def test_http_mode_without_a_signing_secret_is_a_configuration_error(
    make_settings: MakeSettings, fake_slack: FakeSlack
) -> None:
    settings = make_settings(slack_bot_token="xoxb-x", slack_api_url=fake_slack.api_url)
    async with open_router(settings) as router:
        with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
            SlackAdapter(settings=settings, router=router)
