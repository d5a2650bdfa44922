"""Slack user stories in Socket Mode: the real slack-bolt app, the loopback Slack, a real SQLite log."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.fakes.llm import FakeLLM
from tests.fakes.slack import BOT_USER, FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows
from tests.slack.conftest import SlackBot, SlackBotFactory


def card_posts(fake: FakeSlack) -> list[dict[str, object]]:
    return [
        c.params
        for c in fake.calls_to("chat.postMessage")
        if any(b.get("type") == "actions" for b in c.params.get("blocks") or [])
    ]


def card_value(fake: FakeSlack, action: str) -> str:
    buttons = card_posts(fake)[-1]["blocks"][1]["elements"]  # type: ignore[index]
    return str(next(b["value"] for b in buttons if b["value"].endswith(action)))


def replies_in(fake: FakeSlack, thread_ts: str) -> list[str]:
    """Final texts of the bot's messages in a thread, cards excluded."""
    return [fake.final_text(c.params["_ts"]) for c in fake.posts(thread_ts=thread_ts) if not c.params.get("blocks")]


async def settle(bot: SlackBot) -> None:
    """Every envelope sent so far acknowledged (so handed to the router), then every answer finished."""
    await wait_until(lambda: not bot.fake.unacked, what="every envelope acknowledged")
    await bot.router.idle()


async def test_mention_gets_a_threaded_reply_and_follow_ups_need_no_mention(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply("Hi **Alice**, see [the docs](https://example.org/docs).")
    fake_llm.reply("Still here.")
    async with slack_bot() as bot:
        mention = Payloads.mention("hello there")
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 1)
        await settle(bot)
        await fake_slack.send(Payloads.event_body(Payloads.message("and a follow-up", thread_ts=mention["ts"])))
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 2)
        await settle(bot)
        unrelated = Payloads.message("chatter in another thread", thread_ts=Payloads.ts())
        await fake_slack.send(Payloads.event_body(unrelated))
        await settle(bot)
    assert replies_in(fake_slack, mention["ts"]) == [
        "Hi *Alice*, see <https://example.org/docs|the docs>.",
        "Still here.",
    ]
    assert fake_llm.requests[0].body["messages"][-1]["content"] == "Alice: hello there"
    rows = db_rows(db_path, "SELECT role, author_name, content FROM messages ORDER BY id")
    assert [tuple(r) for r in rows] == [
        ("user", "Alice", "hello there"),
        ("assistant", "threadkeeper", "Hi **Alice**, see [the docs](https://example.org/docs)."),
        ("user", "Alice", "and a follow-up"),
        ("assistant", "threadkeeper", "Still here."),
    ]
    assert len(fake_slack.acks) == len(fake_slack.envelopes) == 3


async def test_direct_messages_are_answered_in_a_thread_that_continues(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    async with slack_bot() as bot:
        first = Payloads.message("hi in DM", channel="D1", channel_type="im")
        await fake_slack.send(Payloads.event_body(first))
        await wait_until(lambda: len(replies_in(fake_slack, first["ts"])) == 1)
        await settle(bot)
        follow = Payloads.message("more in DM", channel="D1", channel_type="im", thread_ts=first["ts"])
        await fake_slack.send(Payloads.event_body(follow))
        await wait_until(lambda: len(replies_in(fake_slack, first["ts"])) == 2)
    assert "Alice: hi in DM" in fake_llm.requests[-1].prompt_text


async def test_restart_then_catch_me_up_answers_the_waiting_message(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    mention = Payloads.mention("we picked Redis for caching")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 1)
        await settle(bot)
    async with slack_bot() as bot:
        question = Payloads.message("what did we pick?", thread_ts=mention["ts"], user="UBOB")
        await fake_slack.send(Payloads.event_body(question))
        await wait_until(lambda: len(card_posts(fake_slack)) == 1)
        await fake_slack.send(Payloads.event_body(Payloads.message("hello?", thread_ts=mention["ts"])))
        await settle(bot)
        assert len(card_posts(fake_slack)) == 1
        card = card_posts(fake_slack)[0]
        assert card["thread_ts"] == mention["ts"]
        assert "Where were we?" in card["blocks"][0]["text"]["text"]  # type: ignore[index]
        fake_llm.reply("SUMMARY: the team picked Redis for caching.")
        fake_llm.reply("You picked Redis.")
        await fake_slack.send(
            Payloads.click(
                card_value(fake_slack, "catch_up"), user="UBOB", message_ts=str(card["_ts"]), thread_ts=mention["ts"]
            ),
            kind="interactive",
        )
        await wait_until(lambda: "You picked Redis." in replies_in(fake_slack, mention["ts"]))
    summary = next(r for r in fake_llm.requests if not r.stream)
    assert '<message from="Alice" role="user">we picked Redis for caching' in summary.prompt_text
    answer = fake_llm.requests[-1].body["messages"]
    assert [m["content"] for m in answer[1:]] == ["Bob: what did we pick?", "Alice: hello?"]
    card_updates = [c.params for c in fake_slack.calls_to("chat.update") if c.params.get("ts") == card["_ts"]]
    assert card_updates, "the card was never replaced"
    assert all(b["type"] != "actions" for b in card_updates[-1]["blocks"])
    assert "Caught up" in str(card_updates[-1]["blocks"]) and "Bob" in str(card_updates[-1]["blocks"])
    assert db_rows(db_path, "SELECT state, resolved_by_name FROM cards")[0][:] == ("caught_up", "Bob")


async def test_restart_then_start_fresh_sends_none_of_the_earlier_text(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    mention = Payloads.mention("codename is BLUEBIRD")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 1)
        await settle(bot)
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(Payloads.message("new topic", thread_ts=mention["ts"])))
        await wait_until(lambda: len(card_posts(fake_slack)) == 1)
        fake_llm.reply("Fresh answer.")
        await fake_slack.send(fake_slack.click_on(card_value(fake_slack, "fresh")), kind="interactive")
        await wait_until(lambda: "Fresh answer." in replies_in(fake_slack, mention["ts"]))
        await settle(bot)
    assert "BLUEBIRD" not in fake_llm.requests[-1].prompt_text
    assert not [r for r in fake_llm.requests if not r.stream]


async def test_a_redelivered_event_is_logged_and_answered_once_even_across_a_restart(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    mention = Payloads.mention("only once please")
    body = Payloads.event_body(mention)
    async with slack_bot() as bot:
        await fake_slack.send(body)
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 1)
        await settle(bot)
        await fake_slack.send(body, retry_attempt=1)
        await settle(bot)
    async with slack_bot() as bot:
        await fake_slack.send(body, retry_attempt=2)
        await settle(bot)
    assert len(replies_in(fake_slack, mention["ts"])) == 1
    assert card_posts(fake_slack) == []
    assert len(db_rows(db_path, "SELECT 1 FROM messages WHERE role = 'user'")) == 1
    assert len([r for r in fake_llm.requests if r.stream]) == 1


async def test_a_double_click_and_two_users_on_two_buttons_give_one_outcome(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    mention = Payloads.mention("first")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 1)
        await settle(bot)
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(Payloads.message("second", thread_ts=mention["ts"])))
        await wait_until(lambda: len(card_posts(fake_slack)) == 1)
        clicks = [
            Payloads.click(card_value(fake_slack, "catch_up"), user="UALICE", thread_ts=mention["ts"]),
            Payloads.click(card_value(fake_slack, "fresh"), user="UBOB", thread_ts=mention["ts"]),
            Payloads.click(card_value(fake_slack, "fresh"), user="UBOB", thread_ts=mention["ts"]),
        ]
        await asyncio.gather(*(fake_slack.send(c, kind="interactive") for c in clicks))
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 2)
        await wait_until(lambda: len(fake_slack.calls_to("chat.postEphemeral")) == 2)
        await settle(bot)
    assert len(replies_in(fake_slack, mention["ts"])) == 2
    notes = [c.params["text"] for c in fake_slack.calls_to("chat.postEphemeral")]
    assert all("already chose" in n for n in notes)
    assert len(db_rows(db_path, "SELECT 1 FROM sessions")) == 2


async def test_a_card_still_works_after_a_second_restart(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    mention = Payloads.mention("topic A")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 1)
        await settle(bot)
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(Payloads.message("waiting", thread_ts=mention["ts"])))
        await wait_until(lambda: len(card_posts(fake_slack)) == 1)
        await settle(bot)
    async with slack_bot() as bot:
        fake_llm.reply("SUMMARY: topic A")
        fake_llm.reply("Back on topic A.")
        await fake_slack.send(fake_slack.click_on(card_value(fake_slack, "catch_up")), kind="interactive")
        await wait_until(lambda: "Back on topic A." in replies_in(fake_slack, mention["ts"]))
    assert len(card_posts(fake_slack)) == 1


async def test_edits_and_deletions_are_reflected_in_the_log(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    mention = Payloads.mention("root")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 1)
        follow = Payloads.message("typo here", thread_ts=mention["ts"])
        await fake_slack.send(Payloads.event_body(follow))
        await settle(bot)
        await fake_slack.send(
            Payloads.event_body(Payloads.changed(ts=follow["ts"], text="fixed here", thread_ts=mention["ts"]))
        )
        await fake_slack.send(Payloads.event_body(Payloads.deleted(ts=mention["ts"], thread_ts=mention["ts"])))
        await settle(bot)
    rows = {r["platform_message_id"]: r for r in db_rows(db_path, "SELECT * FROM messages")}
    assert rows[follow["ts"]]["content"] == "fixed here" and rows[follow["ts"]]["edited_utc"]
    assert rows[mention["ts"]]["content"] == "" and rows[mention["ts"]]["deleted_utc"]


async def test_users_outside_the_allowlist_are_ignored_in_channels_and_told_in_dms(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with slack_bot(slack_allowed_users=frozenset({"UALICE"})) as bot:
        await fake_slack.send(Payloads.event_body(Payloads.mention("let me in", user="UBOB")))
        dm = Payloads.message("hello?", user="UBOB", channel="D2", channel_type="im")
        await fake_slack.send(Payloads.event_body(dm))
        await wait_until(lambda: len(fake_slack.posts()) == 1)
        await settle(bot)
    assert "not available to you" in fake_slack.posts()[0].params["text"]
    assert fake_slack.posts()[0].params["thread_ts"] == dm["ts"]
    assert db_rows(db_path, "SELECT 1 FROM messages") == []
    assert fake_llm.requests == []


async def test_a_long_reply_with_code_is_split_and_streaming_edits_are_throttled(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    prose = "\n\n".join(f"Paragraph {i}. " + "Lorem ipsum dolor sit amet. " * 20 for i in range(8))
    code = "```python\n" + "\n".join(f"value_{i} = {i} * 2" for i in range(150)) + "\n```"
    fake_llm.reply(prose + "\n\n" + code + "\n\nDone.")
    fake_llm.chunk_chars = 60
    fake_llm.chunk_delay_s = 0.02  # ~140 chunks: about 3 seconds of streaming
    async with slack_bot() as bot:
        mention = Payloads.mention("write a lot")
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: bool(fake_slack.calls_to("chat.update")), timeout=10)
        await settle(bot)
    texts = replies_in(fake_slack, mention["ts"])
    assert len(texts) >= 3
    assert all(len(t) <= 3500 for t in texts)
    assert all(sum(1 for line in t.split("\n") if line.startswith("```")) % 2 == 0 for t in texts)
    assert texts[-1].endswith("Done.")
    writes = [c for c in fake_slack.calls if c.method in ("chat.update", "chat.postMessage")]
    span = writes[-1].at - writes[0].at
    assert len(fake_slack.calls_to("chat.update")) <= span / 1.0 + len(texts) + 1


async def test_the_bot_ignores_its_own_and_other_bots_messages(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    mention = Payloads.mention("root")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 1)
        own = Payloads.message("my own reply", user=BOT_USER, thread_ts=mention["ts"])
        other = Payloads.message("a bot", thread_ts=mention["ts"]) | {"bot_id": "BOTHER", "subtype": "bot_message"}
        await fake_slack.send(Payloads.event_body(own))
        await fake_slack.send(Payloads.event_body(other))
        await settle(bot)
    assert len([r for r in fake_llm.requests if r.stream]) == 1


async def test_a_rate_limited_post_is_retried_after_slacks_retry_after(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    fake_llm.reply("Worth the wait.")
    fake_slack.rate_limited["chat.postMessage"] = 1
    async with slack_bot() as bot:
        mention = Payloads.mention("busy channel")
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: "Worth the wait." in replies_in(fake_slack, mention["ts"]), timeout=10)
        await settle(bot)
    posts = fake_slack.calls_to("chat.postMessage")
    assert posts[0].params["_status"] == 429
    assert posts[1].at - posts[0].at >= 0.9


async def test_team_and_channel_allowlists_ignore_everything_else(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with slack_bot(slack_allowed_teams=frozenset({"T1"}), slack_allowed_channels=frozenset({"C1"})) as bot:
        await fake_slack.send(Payloads.event_body(Payloads.mention("other channel", channel="C9")))
        await fake_slack.send(Payloads.event_body(Payloads.mention("other team", team="T9"), team="T9"))
        allowed = Payloads.mention("right place")
        await fake_slack.send(Payloads.event_body(allowed))
        await wait_until(lambda: len(replies_in(fake_slack, allowed["ts"])) == 1)
        await settle(bot)
    assert [r["content"] for r in db_rows(db_path, "SELECT content FROM messages WHERE role = 'user'")] == [
        "right place"
    ]
