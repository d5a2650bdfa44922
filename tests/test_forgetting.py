"""Deleting means forgetting: a deleted or edited message's old text leaves the log, the stored summaries, the
live session, every later model request, and the bytes of the database files.

Real router, real SQLite file, real litellm talking HTTP to the fake model. ``forget`` and ``forget --user``
run through the CLI's own functions on a second connection, as an operator's command beside the bot would.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bots.cli import forget, forget_user
from bots.seam.messages import CardAction, CardClick, MessageDeletion, MessageEdit
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM
from tests.fakes.waiting import wait_until
from tests.router_harness import ALICE, BOB, db_rows, message, running_router, thread_key

SECRET = "8812-PLUM"


def later_requests(fake: FakeLLM, after: int) -> list[str]:
    return [r.prompt_text for r in fake.requests[after:]]


def stored_summaries(db_path: Path) -> list[str]:
    return [r["summary"] for r in db_rows(db_path, "SELECT summary FROM sessions WHERE summary IS NOT NULL")]


async def test_a_delete_after_a_catch_up_reaches_the_live_session_and_its_seed_summary(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply_with(lambda body: "Okay.")
    async with running_router(make_settings()) as bot:
        secret = await bot.say(f"The vault code is {SECRET}")
        await bot.say("We ship on Friday", author=BOB)
    async with running_router(make_settings()) as bot:
        await bot.say("What did we decide?")
        fake_llm.reply(f"SUMMARY: the vault code is {SECRET}; the team ships on Friday.")
        fake_llm.reply("You ship on Friday.")
        await bot.click(CardAction.CATCH_UP)
        assert any(SECRET in s for s in stored_summaries(db_path))
        before_delete = len(fake_llm.requests)
        await bot.router.handle_deletion(MessageDeletion(thread=thread_key(), message_id=secret.message_id))
        assert not any(SECRET in s for s in stored_summaries(db_path))  # invalidated at once, on disk too
        fake_llm.reply("SUMMARY: the team ships on Friday.")  # the seed, rebuilt from the remaining log
        fake_llm.reply("Nothing else was decided.")
        await bot.say("Anything else?", author=BOB)
        assert bot.outbox.replies_in(thread_key())[-1] == "Nothing else was decided."
    after = later_requests(fake_llm, before_delete)
    assert len(after) == 2
    rebuild, answer = after
    assert "We ship on Friday" in rebuild and SECRET not in rebuild
    assert SECRET not in answer and "SUMMARY: the team ships on Friday." in answer
    assert stored_summaries(db_path)[-1] == "SUMMARY: the team ships on Friday."


async def test_a_delete_then_a_restart_summarizes_from_the_log_and_never_from_the_old_summary(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply_with(lambda body: "Okay.")
    async with running_router(make_settings()) as bot:
        secret = await bot.say(f"The vault code is {SECRET}")
        await bot.say("We ship on Friday", author=BOB)
    async with running_router(make_settings()) as bot:
        await bot.say("Status?")
        fake_llm.reply(f"OLD SUMMARY: vault code {SECRET}, shipping Friday.")
        await bot.click(CardAction.CATCH_UP)
    async with running_router(make_settings()) as bot:  # the bot restarted; then the person deletes it
        await bot.router.handle_deletion(MessageDeletion(thread=thread_key(), message_id=secret.message_id))
        before = len(fake_llm.requests)
        await bot.say("Where are we?")
        fake_llm.reply("NEW SUMMARY: shipping Friday.")
        fake_llm.reply("Shipping Friday.")
        await bot.click(CardAction.CATCH_UP)
    summary, answer = later_requests(fake_llm, before)
    assert SECRET not in summary and "OLD SUMMARY" not in summary
    assert "We ship on Friday" in summary and "Status?" in summary  # the whole remaining log, not an increment
    assert SECRET not in answer
    assert not any(SECRET in s for s in stored_summaries(db_path))


async def test_an_edit_reaches_the_next_turn_of_a_live_session(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply_with(lambda body: "Okay.")
    async with running_router(make_settings()) as bot:
        edited = await bot.say("Deploy to staging tonight")
        await bot.router.handle_edit(
            MessageEdit(thread=thread_key(), message_id=edited.message_id, text="Deploy to production tonight")
        )
        await bot.say("Ready?", author=BOB)
    history = [m["content"] for m in fake_llm.requests[-1].body["messages"][1:]]
    assert history == ["Alice: Deploy to production tonight", "Okay.", "Bob: Ready?"]


async def test_a_delete_while_the_catch_up_summary_is_written_stops_it_and_summarizes_again(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply_with(lambda body: "Okay.")
    async with running_router(make_settings()) as bot:
        secret = await bot.say(f"The vault code is {SECRET}")
        await bot.say("We ship on Friday", author=BOB)
    async with running_router(make_settings()) as bot:
        await bot.say("Status?")
        before = len(fake_llm.requests)
        fake_llm.hang(5)  # the summary request is held while the person deletes the message
        fake_llm.reply("FRESH SUMMARY: shipping Friday.")
        fake_llm.reply("Shipping Friday.")
        card_id = bot.outbox.cards_posted[0].card_id
        await bot.router.handle_click(
            CardClick(card_id=card_id, action=CardAction.CATCH_UP, user=ALICE, thread=thread_key())
        )
        await wait_until(lambda: len(fake_llm.requests) > before, what="the summary request")
        await bot.router.handle_deletion(MessageDeletion(thread=thread_key(), message_id=secret.message_id))
        await bot.router.idle()
        assert bot.outbox.replies_in(thread_key()) == ["Shipping Friday."]
    stale, fresh, answer = fake_llm.requests[before:]
    assert SECRET in stale.prompt_text and stale.status == 0  # asked before the delete, then abandoned at once
    assert SECRET not in fresh.prompt_text and "We ship on Friday" in fresh.prompt_text
    assert SECRET not in answer.prompt_text and "FRESH SUMMARY" in answer.prompt_text
    assert stored_summaries(db_path) == ["FRESH SUMMARY: shipping Friday."]


async def test_forget_user_erases_one_person_in_every_thread_even_from_a_running_bot(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_llm.reply_with(lambda body: "Okay.")
    settings = make_settings()
    async with running_router(settings) as bot:
        await bot.say(f"Alice's code is {SECRET}", thread=thread_key("one"))
        await bot.say("Bob's note in one", author=BOB, thread=thread_key("one"))
        await bot.say("Alice again, PLUM-TWO", thread=thread_key("two"))
        assert await forget_user(settings, "test:U-alice") == 0  # beside the running bot, on its own connection
        await bot.say("What is left?", author=BOB, thread=thread_key("one"))
        await bot.say("And here?", author=BOB, thread=thread_key("two"))
    printed = capsys.readouterr().out
    assert "Erased 2 message(s) of test:U-alice in 2 thread(s)" in printed
    last_one, last_two = fake_llm.requests[-2].prompt_text, fake_llm.requests[-1].prompt_text
    assert SECRET not in last_one and "Bob's note in one" in last_one
    assert "PLUM-TWO" not in last_two
    rows = db_rows(db_path, "SELECT author_id, author_name, content FROM messages WHERE role = 'user' ORDER BY id")
    assert [tuple(r) for r in rows] == [
        ("", "", ""),
        ("U-bob", "Bob", "Bob's note in one"),
        ("", "", ""),
        ("U-bob", "Bob", "What is left?"),
        ("U-bob", "Bob", "And here?"),
    ]


async def test_retention_purges_old_messages_but_never_one_still_waiting(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=40)
    fake_llm.reply("Old answer.")
    async with running_router(make_settings()) as bot:
        old = message("An old question", thread=thread_key("a"))
        await bot.router.handle_message(replace(old, sent_utc=long_ago))
        await bot.router.idle()
        fake_llm.fail_always(500)
        stuck = message("An old question nobody answered", thread=thread_key("b"))
        await bot.router.handle_message(replace(stuck, sent_utc=long_ago))
        await bot.router.idle()
        fake_llm.clear_faults()
    fake_llm.reply("Late answer.")
    async with running_router(make_settings(log_retention_days=30)) as bot:
        pass  # the purge runs at start-up, then the waiting question is answered
    rows = db_rows(db_path, "SELECT content, reply_state FROM messages ORDER BY id")
    # The bot's reply was sent today, so it stays; the waiting question stays however old it is.
    assert [tuple(r) for r in rows] == [
        ("Old answer.", None),
        ("An old question nobody answered", "answered"),
        ("Late answer.", None),
    ]
    assert db_rows(db_path, "SELECT COUNT(*) AS n FROM erasures")[0]["n"] == 1


def _bytes_of(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


@pytest.mark.parametrize("how", ["deleted", "edited", "thread forgotten"])
async def test_forgotten_text_leaves_no_byte_in_the_database_files(
    how: str, make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    word = "zqxjvqplkw"  # one lowercase token, so it is also what the search index stores
    settings = make_settings()
    fake_llm.reply_with(lambda body: "Okay.")
    async with running_router(settings) as bot:
        for i in range(30):  # enough pages and WAL frames for stale copies to have somewhere to hide
            await bot.say(f"filler message {i} " * 20)
        written = await bot.say(f"please forget {word} soon")
        await bot.say("after it")
        assert word.encode() in _bytes_of(db_path.parent)
        if how == "deleted":
            await bot.router.handle_deletion(MessageDeletion(thread=thread_key(), message_id=written.message_id))
        elif how == "edited":
            await bot.router.handle_edit(MessageEdit(thread=thread_key(), message_id=written.message_id, text="x"))
        else:
            assert await forget(settings, thread_key().thread) == 0  # the CLI, beside the running bot
        # While the bot still has the database open (its -wal and -shm exist)...
        assert word.encode() not in _bytes_of(db_path.parent)
    # ...and once it has closed it.
    assert word.encode() not in _bytes_of(db_path.parent)
