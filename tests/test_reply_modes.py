"""The reply modes' rules at the router (``bots/router/reply_modes.py``): who counts as addressing the bot in ``auto``.

The adapters' stories (tests/discord/test_discord_joining.py, tests/slack/test_slack_joining.py) show the modes
end to end; these pin the finer rules of ``auto`` and the command's parsing.
"""

from __future__ import annotations

from dataclasses import replace

from bots.config import Settings
from bots.router.commands.flow import CommandName, parse_command
from bots.router.reply_modes import starts_with_name
from tests.conftest import MakeSettings
from tests.router_harness import ALICE, BOB, message, running_router, thread_key


def test_reply_takes_only_a_mode_so_a_question_starting_with_reply_stays_a_question() -> None:
    assert parse_command("reply mention", slash=False) == (CommandName.REPLY, "mention")
    assert parse_command("/reply AUTO", slash=True) == (CommandName.REPLY, "auto")
    assert parse_command("reply", slash=False) == (CommandName.REPLY, "")
    assert parse_command("reply to Ann?", slash=False) is None
    assert parse_command("reply all of them", slash=False) is None


def test_the_bots_name_counts_only_at_the_start() -> None:
    assert starts_with_name("threadkeeper, what now?", "threadkeeper")
    assert starts_with_name("@ThreadKeeper what now?", "threadkeeper")
    assert not starts_with_name("ask threadkeeper later", "threadkeeper")
    assert not starts_with_name("threadkeepers unite", "threadkeeper")


async def test_auto_answers_a_question_right_after_its_answer_only_from_the_person_it_answered(
    make_settings: MakeSettings,
) -> None:
    settings: Settings = make_settings(reply_mode="auto")
    async with running_router(settings) as bot:
        await bot.router.handle_message(replace(message("plan the release", author=ALICE), mentions_bot=True))
        await bot.router.idle()
        await bot.say("Alice, can you check the tests?", author=BOB)  # a second person: side talk from now on
        assert len(bot.outbox.replies_in(thread_key())) == 1
        await bot.router.handle_message(replace(message("what about the tests?", author=BOB), mentions_bot=True))
        await bot.router.idle()
        await bot.say("and the docs?", author=BOB)  # a question right after its answer to Bob, by Bob
        assert len(bot.outbox.replies_in(thread_key())) == 3
        await bot.say("and the changelog?", author=ALICE)  # a question, but the answer was Bob's
        await bot.say("fine by me", author=BOB)  # no longer right after the answer
        assert len(bot.outbox.replies_in(thread_key())) == 3
