"""Feedback buttons under answers (recorded, replaced, confirmed, exported) and Slack's agent DM experience."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bots.cli import export
from bots.slack.assistant import TITLE_CHARS, title_from
from bots.slack.feedback import FEEDBACK_THANKS, NEGATIVE, POSITIVE
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import AgentPayloads, FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows
from tests.slack.conftest import SlackBotFactory
from tests.slack.test_slack_approvals import ephemeral_texts
from tests.slack.test_slack_socket_mode import replies_in, settle


async def test_feedback_is_acked_recorded_confirmed_replaced_by_a_second_click_and_exported(
    slack_bot: SlackBotFactory,
    fake_slack: FakeSlack,
    fake_llm: FakeLLM,
    db_path: Path,
    make_settings: MakeSettings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_slack.streaming = True
    fake_llm.reply("Ship on Friday.")
    mention = Payloads.mention("when do we ship?")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: any(s.stopped for s in fake_slack.streamed_in(mention["ts"])))
        await settle(bot)
        answer = fake_slack.calls_to("chat.startStream")[0].params["_ts"]
        for user, rating in (("UBOB", POSITIVE), ("UALICE", POSITIVE), ("UALICE", NEGATIVE)):
            click = AgentPayloads.feedback_click(
                f"{rating}:{answer}", user=user, message_ts=answer, thread_ts=mention["ts"]
            )
            envelope = await fake_slack.send(click, kind="interactive")
            await wait_until(lambda envelope=envelope: envelope in fake_slack.acks)
        await wait_until(lambda: len(ephemeral_texts(fake_slack)) == 3)
        await settle(bot)
    assert ephemeral_texts(fake_slack) == [FEEDBACK_THANKS[POSITIVE]] * 2 + [FEEDBACK_THANKS[NEGATIVE]]
    rows = db_rows(db_path, "SELECT user_id, user_name, rating FROM feedback ORDER BY user_id")
    assert [tuple(r) for r in rows] == [("UALICE", "Alice", "negative"), ("UBOB", "Bob", "positive")]
    assert await export(make_settings(), mention["ts"], "json") == 0
    exported = json.loads(capsys.readouterr().out)["feedback"]
    assert sorted((f["answer"], f["user"], f["rating"]) for f in exported) == [
        (answer, "Alice", "negative"),
        (answer, "Bob", "positive"),
    ]
    assert await export(make_settings(), mention["ts"], "md") == 0
    assert "**threadkeeper** · " in (markdown := capsys.readouterr().out)
    assert "Ship on Friday.\n\n> feedback: 👍 Bob, 👎 Alice" in markdown


async def test_feedback_naming_no_logged_answer_is_acked_and_not_recorded(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, db_path: Path
) -> None:
    async with slack_bot() as bot:
        click = AgentPayloads.feedback_click("positive:1234.5678", message_ts="1234.5678", thread_ts="1234.0000")
        envelope = await fake_slack.send(click, kind="interactive")
        await wait_until(lambda: envelope in fake_slack.acks)
        await settle(bot)
    assert db_rows(db_path, "SELECT * FROM feedback") == []
    assert ephemeral_texts(fake_slack) == []


async def test_a_top_level_dm_starts_its_own_thread_titled_after_its_first_message(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply("Here is a plan.")
    fake_llm.reply("And a second thread's answer.")
    fake_llm.reply("Following up.")
    first, other = Payloads.dm("Plan the offsite for March\nwith details"), Payloads.dm("Something else")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(first))
        await wait_until(lambda: replies_in(fake_slack, first["ts"]) == ["Here is a plan."])
        await fake_slack.send(Payloads.event_body(other))
        await wait_until(lambda: replies_in(fake_slack, other["ts"]) == ["And a second thread's answer."])
        await fake_slack.send(Payloads.event_body(Payloads.dm("and the budget?", thread_ts=first["ts"])))
        await wait_until(lambda: replies_in(fake_slack, first["ts"])[-1:] == ["Following up."])
        await settle(bot)
    titles = [(c.params["thread_ts"], c.params["title"]) for c in fake_slack.calls_to("assistant.threads.setTitle")]
    assert titles == [(first["ts"], "Plan the offsite for March"), (other["ts"], "Something else")]
    threads = db_rows(db_path, "SELECT thread FROM threads ORDER BY id")
    assert [r["thread"] for r in threads] == [first["ts"], other["ts"]]  # one session per top-level DM


async def test_the_messages_tab_and_the_assistant_panel_get_the_configured_suggested_prompts(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack
) -> None:
    prompts = (("Summarize", "Summarize this for me"), ("Plan", "Help me plan my week"))
    async with slack_bot(slack_suggested_prompts=prompts) as bot:
        for event in (
            AgentPayloads.messages_tab_opened(),
            AgentPayloads.messages_tab_opened(),  # once an hour is enough
            AgentPayloads.assistant_thread_started(thread_ts="1700.0001"),
        ):
            await fake_slack.send(Payloads.event_body(event))
        await wait_until(lambda: len(fake_slack.calls_to("assistant.threads.setSuggestedPrompts")) == 2)
        await settle(bot)
    tab, panel = fake_slack.calls_to("assistant.threads.setSuggestedPrompts")
    expected = [{"title": t, "message": m} for t, m in prompts]
    assert (tab.params["channel_id"], "thread_ts" in tab.params, tab.params["prompts"]) == ("D1", False, expected)
    assert (panel.params["thread_ts"], panel.params["prompts"]) == ("1700.0001", expected)
    assert all("_status" not in c.params for c in (tab, panel))


def test_a_title_is_the_first_line_cut_at_a_word() -> None:
    assert title_from("  \nHello there\nmore") == "Hello there"
    long = title_from("word " * 40)
    assert len(long) <= TITLE_CHARS and long.endswith("word…")
