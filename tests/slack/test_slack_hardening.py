"""Slack when the network, the payloads or the channels are not the friendly kind (issue 14)."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads
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
        await fake_slack.wait_for(lambda: len(card_posts(fake_slack)) == 1)
        other = Payloads.ts()  # the same button value, shown in some other thread
        await fake_slack.send(
            Payloads.click(card_value(fake_slack, "fresh"), thread_ts=other, channel="C2"), kind="interactive"
        )
        await fake_slack.wait_for(lambda: len(fake_slack.calls_to("chat.postEphemeral")) == 1)
        await settle(bot)
        assert [r["state"] for r in db_rows(db_path, "SELECT state FROM cards")] == ["pending"]
        fake_llm.reply("Fresh: which one?")
        await fake_slack.send(Payloads.click(card_value(fake_slack, "fresh"), thread_ts=thread), kind="interactive")
        await fake_slack.wait_for(lambda: "Fresh: which one?" in replies_in(fake_slack, thread))
        await settle(bot)
    note = fake_slack.calls_to("chat.postEphemeral")[0].params
    assert (note["channel"], note["thread_ts"], note["text"]) == ("C2", other, "That card is no longer active.")
    assert [r["state"] for r in db_rows(db_path, "SELECT state FROM cards")] == ["fresh"]
