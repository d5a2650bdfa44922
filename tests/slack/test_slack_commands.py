"""The in-thread commands on Slack: message shortcuts and command mentions through the real slack-bolt app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads, message_shortcut, post_event, post_interaction
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows
from tests.slack.conftest import SIGNING_SECRET, SlackBotFactory
from tests.slack.test_slack_socket_mode import card_value, replies_in, settle

MODELS = "openai/fake,openai/fake-big"


async def open_thread(fake: FakeSlack, bot: object, text: str) -> str:
    """Mention the bot at the top level and wait for its answer in the new thread; return the thread's ts."""
    mention = Payloads.mention(text)
    await fake.send(Payloads.event_body(mention))
    await wait_until(lambda: len(replies_in(fake, mention["ts"])) == 1, timeout=30, what="the first answer")
    await settle(bot)
    return str(mention["ts"])


async def shortcut(fake: FakeSlack, callback_id: str, thread: str, *, user: str = "UALICE") -> None:
    """Use a message shortcut on a reply in ``thread`` (Socket Mode), as a person does from its menu."""
    await fake.send(
        message_shortcut(callback_id, message_ts=Payloads.ts(), thread_ts=thread, user=user), kind="interactive"
    )


async def private(fake: FakeSlack, *, user: str = "UALICE", count: int = 1) -> list[dict[str, Any]]:
    await wait_until(lambda: len(fake.ephemerals(user=user)) >= count, what=f"{count} ephemeral note(s) for {user}")
    return fake.ephemerals(user=user)


async def test_retry_shortcut_streams_a_new_answer_and_tells_the_asker_alone(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply("A weak answer.")
    fake_llm.reply("A better answer.")
    async with slack_bot() as bot:
        thread = await open_thread(fake_slack, bot, "which queue?")
        await shortcut(fake_slack, "tk_retry", thread, user="UBOB")
        await wait_until(lambda: len(replies_in(fake_slack, thread)) == 2, what="the new answer")
        [note] = await private(fake_slack, user="UBOB")
        await settle(bot)
    assert replies_in(fake_slack, thread) == ["A weak answer.", "A better answer."]
    assert (note["channel"], note["thread_ts"]) == ("C1", thread) and "Writing a new answer" in note["text"]
    assert len(fake_slack.acks) == len(fake_slack.envelopes)
    rows = db_rows(db_path, "SELECT content FROM messages WHERE replaced_utc IS NOT NULL")
    assert [r["content"] for r in rows] == ["A weak answer."]


async def test_a_model_mention_switches_the_thread_and_the_choice_survives_a_restart(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with slack_bot(llm_models=MODELS) as bot:
        thread = await open_thread(fake_slack, bot, "hello")
        await fake_slack.send(Payloads.event_body(Payloads.mention("model fake-big", thread_ts=thread)))
        [switched] = await private(fake_slack)
        await fake_slack.send(Payloads.event_body(Payloads.message("and now?", thread_ts=thread)))
        await wait_until(lambda: len(replies_in(fake_slack, thread)) == 2, what="the answer from the new model")
        await settle(bot)
    async with slack_bot(llm_models=MODELS) as bot:
        await fake_slack.send(Payloads.event_body(Payloads.message("still there?", thread_ts=thread)))
        await wait_until(
            lambda: "Where were we?" in str(fake_slack.calls_to("chat.postMessage")[-1].params), what="card"
        )
        fake_llm.reply("SUMMARY: hello.")
        await fake_slack.send(Payloads.click(card_value(fake_slack, "catch_up"), thread_ts=thread), kind="interactive")
        await wait_until(lambda: len(replies_in(fake_slack, thread)) == 3, what="the caught-up answer")
        await settle(bot)
    assert "now uses openai/fake-big" in switched["text"] and switched["thread_ts"] == thread
    assert [r.body["model"] for r in fake_llm.requests if r.stream] == ["fake", "fake-big", "fake-big"]
    logged = [r["content"] for r in db_rows(db_path, "SELECT content FROM messages WHERE role = 'user'")]
    assert logged == ["hello", "and now?", "still there?"]  # the command is not part of the conversation


async def test_memory_shortcut_and_a_question_that_only_starts_like_a_command(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    async with slack_bot() as bot:
        thread = await open_thread(fake_slack, bot, "we ship on the 14th")
        await shortcut(fake_slack, "tk_memory", thread)
        [memory] = await private(fake_slack)
        await fake_slack.send(Payloads.event_body(Payloads.mention("memory leaks in Python?", thread_ts=thread)))
        await wait_until(lambda: len(replies_in(fake_slack, thread)) == 2, what="an answer to the question")
    assert "Messages in my session: 2" in memory["text"] and "Model: openai/fake" in memory["text"]


async def test_export_shortcut_sends_a_markdown_file_to_the_askers_dm(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    fake_llm.reply("The 14th.")
    async with slack_bot() as bot:
        thread = await open_thread(fake_slack, bot, "when do we ship?")
        await shortcut(fake_slack, "tk_export", thread, user="UBOB")
        [note] = await private(fake_slack, user="UBOB")
    [(channel, title, content)] = fake_slack.shared_files()
    assert fake_slack.calls_to("conversations.open")[0].params["users"] == "UBOB"
    assert channel == "DUBOB" and title == f"thread-slack-{thread.replace('.', '')}.md"  # ids, never the text
    assert "when do we ship?" in content.decode() and "The 14th." in content.decode()
    assert "DM" in note["text"] and note["thread_ts"] == thread


async def test_forget_shortcut_asks_with_a_button_then_purges_and_notes_it_in_the_thread(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with slack_bot() as bot:
        thread = await open_thread(fake_slack, bot, "a secret plan")
        await shortcut(fake_slack, "tk_forget", thread)
        [question] = await private(fake_slack)
        assert db_rows(db_path, "SELECT COUNT(*) AS n FROM messages")[0]["n"] == 2
        [button] = question["blocks"][1]["elements"]
        assert (button["text"]["text"], button["style"]) == ("Forget this thread", "danger")
        click = Payloads.click(button["value"], user="UBOB", thread_ts=thread)
        click["container"] |= {"is_ephemeral": True, "thread_ts": thread}
        await fake_slack.send(click, kind="interactive")
        await private(fake_slack, user="UBOB")
        await settle(bot)
    note = fake_slack.posts(thread_ts=thread)[-1].params["text"]
    assert note == "Bob asked me to forget this thread: its log, summaries and session are gone."
    assert "forgotten" in fake_slack.ephemerals(user="UBOB")[0]["text"]
    assert db_rows(db_path, "SELECT COUNT(*) AS n FROM messages")[0]["n"] == 0


async def test_after_the_forget_shortcut_the_next_plain_message_is_answered_afresh(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply("Noted.")
    fake_llm.reply("Hello again.")
    async with slack_bot() as bot:
        thread = await open_thread(fake_slack, bot, "a secret plan")
        await shortcut(fake_slack, "tk_forget", thread)
        [question] = await private(fake_slack)
        [button] = question["blocks"][1]["elements"]
        click = Payloads.click(button["value"], thread_ts=thread)
        click["container"] |= {"is_ephemeral": True, "thread_ts": thread}
        await fake_slack.send(click, kind="interactive")
        await private(fake_slack, count=2)
        await settle(bot)
        await fake_slack.send(Payloads.event_body(Payloads.message("shall we start over?", thread_ts=thread)))
        await wait_until(lambda: "Hello again." in replies_in(fake_slack, thread), what="the answer after forget")
        await settle(bot)
    assert "Where were we?" not in str(fake_slack.calls_to("chat.postMessage"))  # a fresh start, not a card
    assert "a secret plan" not in fake_llm.requests[-1].prompt_text
    rows = db_rows(db_path, "SELECT content FROM messages ORDER BY id")
    assert [r["content"] for r in rows] == ["shall we start over?", "Hello again."]


async def test_a_forget_click_whose_thread_slack_does_not_say_forgets_nothing(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with slack_bot() as bot:
        thread = await open_thread(fake_slack, bot, "a secret plan")
        await shortcut(fake_slack, "tk_forget", thread)
        [question] = await private(fake_slack)
        [button] = question["blocks"][1]["elements"]
        click = Payloads.click(button["value"], user="UBOB")  # neither message nor container names the thread
        click["container"] |= {"is_ephemeral": True}
        await fake_slack.send(click, kind="interactive")
        [refused] = await private(fake_slack, user="UBOB")
        await settle(bot)
    assert refused["text"] == "That button belongs to another thread; nothing was forgotten."
    assert db_rows(db_path, "SELECT COUNT(*) AS n FROM messages")[0]["n"] == 2
    assert len(fake_slack.posts(thread_ts=thread)) == 1  # the answer; no forget note


async def test_on_an_orphaned_thread_retry_explains_the_card(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    async with slack_bot() as bot:
        thread = await open_thread(fake_slack, bot, "hello")
    async with slack_bot() as bot:
        await shortcut(fake_slack, "tk_retry", thread)
        [note] = await private(fake_slack)
        await settle(bot)
    assert 'choose "Catch me up" or "Start fresh" on the card first' in note["text"]
    assert len([r for r in fake_llm.requests if r.stream]) == 1


async def test_refusals_admins_allowlists_and_a_thread_the_bot_is_not_in(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with slack_bot(admin_users="UALICE", slack_allowed_users="UALICE,UBOB") as bot:
        thread = await open_thread(fake_slack, bot, "hello")
        await shortcut(fake_slack, "tk_forget", thread, user="UBOB")
        [refused] = await private(fake_slack, user="UBOB")
        await shortcut(fake_slack, "tk_export", thread, user="UCAROL")
        [denied] = await private(fake_slack, user="UCAROL")
        await shortcut(fake_slack, "tk_memory", Payloads.ts())
        [elsewhere] = await private(fake_slack)
        await settle(bot)
    assert (
        refused["text"] == "Sorry, only the bot's admins can make me forget a thread here." and "blocks" not in refused
    )
    assert "not available to you" in denied["text"] and fake_slack.shared_files() == []
    assert "not part of this thread" in elsewhere["text"]
    assert db_rows(db_path, "SELECT COUNT(*) AS n FROM messages")[0]["n"] == 2


async def test_a_shortcut_in_http_mode_is_verified_and_answered(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    async with slack_bot(http=True) as bot:
        mention = Payloads.mention("hello over http")
        assert await post_event(bot.events_url, SIGNING_SECRET, Payloads.event_body(mention)) == 200
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 1, what="the answer")
        await settle(bot)
        payload = message_shortcut("tk_memory", message_ts=Payloads.ts(), thread_ts=mention["ts"])
        assert await post_interaction(bot.events_url, "wrong-secret", payload) == 401
        assert await post_interaction(bot.events_url, SIGNING_SECRET, payload) == 200
        [memory] = await private(fake_slack)
    assert "Messages in my session: 2" in memory["text"]
    assert len(fake_slack.ephemerals()) == 1


async def test_an_export_slack_refuses_to_take_gets_the_asker_a_short_note(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    fake_slack.errors["files.completeUploadExternal"] = ["internal_error"]
    async with slack_bot() as bot:
        thread = await open_thread(fake_slack, bot, "hello")
        await shortcut(fake_slack, "tk_export", thread)
        [note] = await private(fake_slack)
    assert note["text"] == "Something went wrong on my side with that command. Try again in a minute."
    assert fake_slack.shared_files() == []
    assert "the export command failed" in caplog.text and "internal_error" in caplog.text
