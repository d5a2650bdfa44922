"""Issue 22 on Discord: a mention brings the bot into a thread with its history, and it answers when addressed.

Everything goes through discord.py against the loopback Discord: the thread's earlier messages are what the fake
stores (``wrote_while_bot_was_away``: Discord kept them, the bot was never told), read back by
``GET /channels/{thread}/messages``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.discord.conftest import DiscordBotFactory, open_thread, settle
from tests.discord.test_discord_commands import answered, private_text
from tests.fakes.discord import ALICE, BOB, FakeDiscord
from tests.fakes.llm import FakeLLM
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows

THREAD = "555"


def people_talked(fake: FakeDiscord, count: int, *, words: str = "about the release") -> list[str]:
    """``count`` messages Alice and Bob wrote in a thread the bot was not part of; their ids, oldest first."""
    fake.existing_thread(THREAD, "release chat")
    return [
        fake.wrote_while_bot_was_away(f"point {i} {words}", channel_id=THREAD, author=BOB if i % 2 else ALICE)["id"]
        for i in range(count)
    ]


def logged(db_path: Path, *, role: str = "user") -> list[str]:
    rows = db_rows(
        db_path,
        "SELECT m.content FROM messages m JOIN threads t ON t.id = m.thread_id WHERE t.thread = ? AND m.role = ? "
        "ORDER BY m.id",
        (THREAD, role),
    )
    return [str(r["content"]) for r in rows]


def answers(fake_llm: FakeLLM) -> list[str]:
    """The prompts of the answers (streamed requests; summaries are not streamed)."""
    return [r.prompt_text for r in fake_llm.requests if r.stream]


async def test_a_mention_in_a_thread_of_30_messages_is_answered_with_all_of_them_each_logged_once(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    people_talked(fake_discord, 30)
    async with discord_bot() as bot:
        mention = await fake_discord.user_says("what do you make of this?", channel_id=THREAD, mention_bot=True)
        await wait_until(lambda: len(fake_discord.texts_in(THREAD)) == 1, timeout=20)
        await settle(bot)
        prompt = answers(fake_llm)[-1]
        assert "Alice: point 0 about the release" in prompt and "Bob: point 29 about the release" in prompt
        assert prompt.index("point 0 ") < prompt.index("point 29 ") < prompt.index("what do you make of this?")
        assert logged(db_path) == [f"point {i} about the release" for i in range(30)] + ["what do you make of this?"]
        reads = len(fake_discord.calls_to("GET", rf"/channels/{THREAD}/messages"))
        await fake_discord.dispatch("MESSAGE_CREATE", mention)  # the gateway delivers the mention again
        await settle(bot)
        assert len(logged(db_path)) == 31
        assert len(fake_discord.calls_to("GET", rf"/channels/{THREAD}/messages")) == reads
        assert len(fake_discord.texts_in(THREAD)) == 1
    rows = db_rows(db_path, "SELECT reply_state, author_name, sent_utc FROM messages WHERE role = 'user' ORDER BY id")
    assert [r["reply_state"] for r in rows] == ["answered"] * 31  # the history as read, the mention answered
    assert {r["author_name"] for r in rows} == {"Alice", "Bob"} and all(r["sent_utc"] for r in rows)


async def test_a_thread_of_2000_messages_is_read_to_the_limit_and_summarized_never_past_the_window(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    window = 2048
    fake_llm.max_context_tokens = window
    people_talked(fake_discord, 2000, words="we should check the release notes and the migration before Friday")
    async with discord_bot(llm_context_window=window, llm_max_output_tokens=256) as bot:
        await fake_discord.user_says("so where are we?", channel_id=THREAD, mention_bot=True)
        await wait_until(lambda: len(fake_discord.texts_in(THREAD)) == 1, timeout=20)
        await settle(bot)
    history = logged(db_path)[:-1]
    assert len(history) == 200 and history[-1].startswith("point 1999 ")  # the newest JOIN_HISTORY_MESSAGES
    summaries = [r for r in fake_llm.requests if not r.stream]
    assert summaries, "the history passed the window: it was summarized, not cut"
    assert all(r.status == 200 for r in fake_llm.requests)
    assert fake_llm.max_seen_tokens is not None and fake_llm.max_seen_tokens <= window
    assert len(fake_discord.calls_to("GET", rf"/channels/{THREAD}/messages")) == 2  # two pages of 100


async def test_a_deleted_message_of_the_joined_history_leaves_the_session(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_discord.existing_thread(THREAD, "release chat")
    fake_discord.wrote_while_bot_was_away("the staging password is hunter2", channel_id=THREAD, author=BOB)
    secret = fake_discord.messages[max(fake_discord.messages, key=int)]
    fake_discord.wrote_while_bot_was_away("we deploy on Friday", channel_id=THREAD)
    async with discord_bot() as bot:
        await fake_discord.user_says("any concerns?", channel_id=THREAD, mention_bot=True)
        await wait_until(lambda: len(fake_discord.texts_in(THREAD)) == 1, timeout=20)
        assert "hunter2" in answers(fake_llm)[-1]
        await fake_discord.user_deletes(secret)
        await settle(bot)
        await fake_discord.user_says("and now?", channel_id=THREAD)
        await wait_until(lambda: len(fake_discord.texts_in(THREAD)) == 2)
        await settle(bot)
    assert "hunter2" not in answers(fake_llm)[-1] and "we deploy on Friday" in answers(fake_llm)[-1]
    assert not any("hunter2" in text for text in logged(db_path))


async def test_history_of_people_the_allowlist_excludes_is_left_out(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    people_talked(fake_discord, 6)
    async with discord_bot(discord_allowed_users=ALICE["id"]) as bot:
        await fake_discord.user_says("summary please", channel_id=THREAD, mention_bot=True)
        await wait_until(lambda: len(fake_discord.texts_in(THREAD)) == 1, timeout=20)
        await settle(bot)
    kept = ["point 0 about the release", "point 2 about the release", "point 4 about the release"]
    assert logged(db_path) == [*kept, "summary please"]
    assert "point 1 " not in answers(fake_llm)[-1] and "Bob" not in answers(fake_llm)[-1]


async def test_a_refused_history_is_logged_once_and_the_mention_still_answered(
    discord_bot: DiscordBotFactory,
    fake_discord: FakeDiscord,
    fake_llm: FakeLLM,
    db_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    people_talked(fake_discord, 3)
    fake_discord.existing_thread("556", "another")
    fake_discord.fail("GET", r"/channels/(555|556)/messages", status=403, code=50001, times=2)
    async with discord_bot() as bot:
        await fake_discord.user_says("thoughts?", channel_id=THREAD, mention_bot=True)
        await fake_discord.user_says("and here?", channel_id="556", mention_bot=True)
        await wait_until(lambda: len(fake_discord.texts_in(THREAD)) == len(fake_discord.texts_in("556")) == 1)
        await settle(bot)
    assert logged(db_path) == ["thoughts?"]
    refusals = [r for r in caplog.records if "refused the history" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelno == logging.WARNING


async def test_auto_answers_one_person_then_only_when_addressed_with_the_side_talk_in_context(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot(reply_mode="auto") as bot:
        thread = await open_thread(fake_discord, bot, "help me plan the release")
        await fake_discord.user_says("what about the changelog?", channel_id=thread)  # still one person
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 2)
        await fake_discord.user_says("Alice, did you run the migration?", channel_id=thread, author=BOB)
        await fake_discord.user_says("yes, it took ten minutes", channel_id=thread)
        await settle(bot)
        assert len(fake_discord.texts_in(thread)) == 2  # a side conversation: logged, not answered
        await fake_discord.user_says("is ten minutes too long?", channel_id=thread, author=BOB, mention_bot=True)
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 3)
        await settle(bot)
        prompt = answers(fake_llm)[-1]
        assert "Bob: Alice, did you run the migration?" in prompt and "Alice: yes, it took ten minutes" in prompt
        await fake_discord.user_says("threadkeeper, and the rollback?", channel_id=thread)  # its name first
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 4)
        await settle(bot)
    rows = db_rows(db_path, "SELECT content FROM messages WHERE role = 'user' ORDER BY id")
    assert len(rows) == 6


async def test_reply_mention_survives_a_restart_and_a_message_it_leaves_posts_no_card(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "release plan")
        chosen = await fake_discord.use_command("reply", channel_id=thread, options={"mode": "mention"})
        await answered(fake_discord, chosen)
        assert "Reply mode here is now mention" in private_text(fake_discord, chosen)
    async with discord_bot() as bot:  # a new process on the same database
        await fake_discord.user_says("just noting the date for us", channel_id=thread)
        await settle(bot)
        assert fake_discord.cards_in(thread) == [] and len(fake_discord.texts_in(thread)) == 1
        await fake_discord.user_says("where were we?", channel_id=thread, mention_bot=True)
        await wait_until(lambda: len(fake_discord.cards_in(thread)) == 1)
        shown = await fake_discord.use_command("reply", channel_id=thread)
        await answered(fake_discord, shown)
        assert "Reply mode here: mention" in private_text(fake_discord, shown)
    waiting = db_rows(db_path, "SELECT content FROM messages WHERE reply_state = 'waiting'")
    assert [r["content"] for r in waiting] == ["where were we?"]


async def test_in_mention_mode_a_discord_reply_to_the_bots_answer_is_answered(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM
) -> None:
    async with discord_bot(reply_mode="mention") as bot:
        thread = await open_thread(fake_discord, bot, "release plan")
        await fake_discord.user_says("a note for Bob", channel_id=thread)
        await settle(bot)
        assert len(fake_discord.texts_in(thread)) == 1
        answer = fake_discord.sent_in(thread)[0]
        reply = fake_discord.message_payload(channel_id=thread, author=ALICE, content="why Friday?")
        reply |= {"type": 19, "referenced_message": answer}
        reply["message_reference"] = {"message_id": answer["id"], "channel_id": thread, "guild_id": answer["guild_id"]}
        fake_discord.messages[reply["id"]] = reply
        await fake_discord.dispatch("MESSAGE_CREATE", reply)
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 2)
        await settle(bot)
    assert "a note for Bob" in answers(fake_llm)[-1]
