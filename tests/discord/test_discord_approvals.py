"""Tool approvals and progress on Discord: the real discord.py client, the loopback Discord, a real SQLite file.

The tests stand in for the router's approval flow (``tests/approval_rows.py`` opens the row and posts the
card through the real outbox); every click goes through discord.py's persistent buttons to the real router.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from bots.replies.render import tool_status
from bots.seam.messages import ThreadKey
from tests.approval_rows import ARGUMENTS, approval_row, post_approval
from tests.discord.conftest import DiscordBot, DiscordBotFactory, button, buttons, open_thread, settle
from tests.fakes.discord import ALICE, BOB, CHANNEL, GUILD, FakeDiscord
from tests.fakes.llm import FakeLLM
from tests.fakes.waiting import wait_until

EPHEMERAL = 64


def key(thread: str) -> ThreadKey:
    return ThreadKey("discord", GUILD, CHANNEL, thread)


async def approval_card(
    fake: FakeDiscord, bot: DiscordBot, db_path: Path, thread: str, *, arguments: str = ARGUMENTS
) -> tuple[int, dict[str, Any]]:
    """Post an approval card; return its id and the message as posted (a copy: later edits do not change it)."""
    approval_id, message_id = await post_approval(db_path, bot.adapter.outbox, key(thread), arguments=arguments)
    return approval_id, copy.deepcopy(fake.messages[message_id])


async def test_a_click_from_outside_the_allowlist_is_refused_privately_and_the_call_still_waits(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot(discord_allowed_users=frozenset({ALICE["id"]})) as bot:
        thread = await open_thread(fake_discord, bot, "tidy the notes")
        approval_id, card = await approval_card(fake_discord, bot, db_path, thread)
        stranger = await fake_discord.click(button(card, "allow"), message=card, who=BOB)
        await wait_until(lambda: bool(fake_discord.callbacks(stranger)))
        await settle(bot)
        assert approval_row(db_path, approval_id) == ("pending", None)
        assert len(buttons(fake_discord.messages[card["id"]])) == 2
    refusal = fake_discord.callbacks(stranger)[0].json
    assert refusal["type"] == 4 and refusal["data"]["flags"] & EPHEMERAL
    assert "not available to you" in refusal["data"]["content"]


async def test_an_approval_button_pressed_in_another_thread_is_refused(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "tidy the notes")
        other = await open_thread(fake_discord, bot, "lunch plans")
        approval_id, card = await approval_card(fake_discord, bot, db_path, thread)
        await fake_discord.click(button(card, "allow"), message=card | {"channel_id": other})
        await wait_until(lambda: len(fake_discord.followups()) == 1)
        await settle(bot)
    note = fake_discord.followups()[0].json
    assert note["content"] == "That request is no longer active." and note["flags"] & EPHEMERAL
    assert approval_row(db_path, approval_id) == ("pending", None)


async def test_a_tool_status_shows_at_the_end_of_the_streaming_reply_and_never_in_the_final_text(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    status_line = "*Running files\\_\\_read\\_file…*"
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "read the notes")
        calls_before = len(fake_discord.calls)
        await bot.adapter.outbox.show_status(thread=key(thread), text=tool_status("files__read_file"))
        await settle(bot)
        assert len(fake_discord.calls) == calls_before  # nothing streams: nothing to mark, nothing sent
        fake_llm.reply("Let me look. It says ship on Friday.")
        fake_llm.chunk_chars = 13
        resume = fake_llm.pause_after(13)
        await fake_discord.user_says("what do they say?", channel_id=thread)
        await wait_until(lambda: "Let me look." in fake_discord.texts_in(thread)[-1])
        reply_id = fake_discord.sent_in(thread)[-1]["id"]
        await bot.adapter.outbox.show_status(thread=key(thread), text=tool_status("files__read_file"))
        await wait_until(lambda: fake_discord.messages[reply_id]["content"].endswith(status_line))
        resume.set()
        await wait_until(lambda: "Friday" in fake_discord.messages[reply_id]["content"])
        await settle(bot)
    assert fake_discord.messages[reply_id]["content"] == "Let me look. It says ship on Friday."
    assert fake_discord.messages[reply_id]["content"].count("Running") == 0
    shown = [c.json["content"] for c in fake_discord.calls_to("PATCH", rf"/channels/{thread}/messages/{reply_id}")]
    assert shown[0] == f"Let me look.\n\n{status_line}"


HOSTILE = json.dumps({f"k{i}\n@everyone <!here> `": "```\n**bold** <@1>" for i in range(1000)})


async def test_a_thousand_hostile_keys_fit_the_card_say_how_many_are_hidden_and_show_all_has_them_all(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "tidy the notes")
        approval_id, card = await approval_card(fake_discord, bot, db_path, thread, arguments=HOSTILE)
        shown = await fake_discord.click(button(card, "show_all"), message=card, who=BOB)
        await wait_until(lambda: bool(fake_discord.followups_of(shown)))
        await settle(bot)
    text = card["content"]
    assert len(text) <= 2000 and text.count("```") == 2  # no argument closes the code block
    inside = text.split("```")[1].strip("\n").split("\n")
    hidden = 1000 - (len(inside) - 1)
    assert inside[-1] == f"… {hidden:,} more arguments are not shown here; Show all has them." and hidden < 1000
    assert all(line.startswith('"k') and line.endswith('<@1>"') for line in inside[:-1])  # one line per key
    assert inside[0].startswith('"k0\\n@everyone <!here> `": "`\u200b`\u200b`\\n**bold** <@1>')
    posted = fake_discord.calls_to("POST", rf"/channels/{thread}/messages")[-1].json
    assert posted["allowed_mentions"]["parse"] == []  # nobody is pinged
    [reply] = [c.json for c in fake_discord.followups_of(shown)]
    assert reply["flags"] & EPHEMERAL
    [upload] = fake_discord.uploads
    assert upload.filename == f"arguments-{approval_id}.json" and json.loads(upload.content) == json.loads(HOSTILE)


async def test_show_all_from_another_thread_or_outside_the_allowlist_shows_nothing(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot(discord_allowed_users=frozenset({ALICE["id"]})) as bot:
        thread = await open_thread(fake_discord, bot, "tidy the notes")
        other = await open_thread(fake_discord, bot, "lunch plans")
        _, card = await approval_card(fake_discord, bot, db_path, thread, arguments=HOSTILE)
        elsewhere = await fake_discord.click(button(card, "show_all"), message=card | {"channel_id": other})
        stranger = await fake_discord.click(button(card, "show_all"), message=card, who=BOB)
        await wait_until(lambda: bool(fake_discord.followups_of(elsewhere) and fake_discord.callbacks(stranger)))
        await settle(bot)
    assert fake_discord.followups_of(elsewhere)[0].json["content"] == "That request is no longer active."
    assert "not available to you" in fake_discord.callbacks(stranger)[0].json["data"]["content"]
    assert fake_discord.uploads == [] and fake_discord.followups_of(stranger) == []


async def test_show_all_on_a_card_an_earlier_run_posted_still_answers(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    arguments = json.dumps({"path": "notes/plan.md", "content": "x" * 3000})
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "tidy the notes")
        _, card = await approval_card(fake_discord, bot, db_path, thread, arguments=arguments)
    async with discord_bot() as bot:  # a new process: only the DynamicItem template knows the button
        shown = await fake_discord.click(button(card, "show_all"), message=card, who=BOB)
        await wait_until(lambda: bool(fake_discord.followups_of(shown)))
        await settle(bot)
    [upload] = fake_discord.uploads
    assert json.loads(upload.content) == json.loads(arguments)
