"""Discord deletions reach every copy: MESSAGE_DELETE and MESSAGE_DELETE_BULK, in a live thread and an orphaned one."""

from __future__ import annotations

from pathlib import Path

from bots.router.forgetting import NEUTRAL_TITLE
from tests.discord.conftest import DiscordBotFactory, button, open_thread, settle
from tests.discord.test_discord_commands import answered
from tests.fakes.discord import BOB, FakeDiscord
from tests.fakes.llm import FakeLLM
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows


async def test_a_purge_and_a_delete_leave_no_trace_in_later_requests_or_the_catch_up(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply_with(lambda body: "Noted.")
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "release planning")
        token = await fake_discord.user_says("my token is abc123", channel_id=thread)
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 2)
        other = await fake_discord.user_says("and the key is xyz789", channel_id=thread, author=BOB)
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 3)
        await settle(bot)
        await fake_discord.moderator_bulk_deletes([token, other])
        await wait_until(lambda: len(db_rows(db_path, "SELECT 1 FROM erasures")) == 2)
        await fake_discord.user_says("what is left?", channel_id=thread)
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 4)
        await settle(bot)
        live = fake_llm.requests[-1].prompt_text
        assert "abc123" not in live and "xyz789" not in live and "release planning" in live
        assert fake_discord.texts_in(thread).count("Noted.") == 4  # the bot's own replies stay
    async with discord_bot() as bot:
        ghost = await fake_discord.user_says("the door code is ghost-42", channel_id=thread, author=BOB)
        await wait_until(lambda: len(fake_discord.cards_in(thread)) == 1)
        await fake_discord.user_deletes(ghost)  # deleted while the thread is orphaned
        await wait_until(lambda: len(db_rows(db_path, "SELECT 1 FROM erasures")) == 3)
        fake_llm.reply("SUMMARY: release planning.")
        fake_llm.reply("Back with you.")
        await fake_discord.user_says("still there?", channel_id=thread)
        card = fake_discord.cards_in(thread)[0]
        await fake_discord.click(button(card, "catch_up"), message=card)
        await wait_until(lambda: "Back with you." in fake_discord.texts_in(thread))
        await settle(bot)
    summary = next(r for r in fake_llm.requests if not r.stream).prompt_text
    for text in ("abc123", "xyz789", "ghost-42"):
        assert text not in summary and text not in fake_llm.requests[-1].prompt_text
    assert "release planning" in summary
    rows = db_rows(db_path, "SELECT content FROM messages WHERE deleted_utc IS NOT NULL")
    assert [r["content"] for r in rows] == ["", "", ""]


async def test_a_deleted_mention_that_started_a_thread_takes_its_text_and_the_title_made_from_it(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    """The bot named the thread after the mention; the mention lives in the parent channel, so Discord's
    MESSAGE_DELETE names that channel, not the thread (whose id is the mention's)."""
    fake_llm.reply_with(lambda body: "Noted.")
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "my password is hunter2, rotate it")
        assert db_rows(db_path, "SELECT title FROM threads")[0]["title"] == "my password is hunter2, rotate it"
        assert "hunter2" in fake_discord.threads[thread]["name"]
        await fake_discord.user_deletes(fake_discord.messages[thread])
        await wait_until(lambda: len(db_rows(db_path, "SELECT 1 FROM erasures")) == 1)
        await wait_until(lambda: fake_discord.threads[thread]["name"] == NEUTRAL_TITLE)  # the name Discord shows
        export = await fake_discord.use_command("export", channel_id=thread)
        await answered(fake_discord, export)
        await settle(bot)
    assert [tuple(r) for r in db_rows(db_path, "SELECT title, (SELECT content FROM messages) FROM threads")] == [
        (None, "")
    ]
    [upload] = fake_discord.uploads
    assert upload.filename == f"thread-discord-{thread}.md" and b"hunter2" not in upload.content


async def test_an_edited_mention_renames_the_thread_the_bot_named_after_it_and_a_later_edit_does_not(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM
) -> None:
    fake_llm.reply_with(lambda body: "Noted.")
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "call 555-0199 about the lease")
        later = await fake_discord.user_says("and the deposit", channel_id=thread)
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 2)
        await fake_discord.user_edits(later, "and the deposit, please")
        await settle(bot)
        assert "555-0199" in fake_discord.threads[thread]["name"]  # not made from that message
        await fake_discord.user_edits(fake_discord.messages[thread], "call me about the lease")
        await wait_until(lambda: fake_discord.threads[thread]["name"] == NEUTRAL_TITLE)
        await settle(bot)
