"""Tool calls end to end on Discord: the router's approval flow, the real MCP server over stdio, discord.py.

These need the router side of tools (``bots/tools/approvals.py``, ``bots/tools/tool_turns.py``), which lives on
main; on a branch without it they are skipped, and they run once both sides are merged.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from pathlib import Path

import pytest

from tests.discord.conftest import DiscordBotFactory, button, buttons, settle
from tests.fakes.discord import ALICE, BOB, FakeDiscord
from tests.fakes.llm import FakeLLM, ScriptedCall
from tests.fakes.mcp_server import stdio_entry, write_config
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows

pytestmark = pytest.mark.slow  # each test starts an MCP server process


async def test_a_call_that_needs_a_person_waits_for_allow_then_the_answer_comes(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "mcp.json", {"fake": stdio_entry()})
    fake_llm.call_tools(ScriptedCall("fake__create_ticket", {"title": "Rotate the keys"}), text="Filing it.")
    fake_llm.reply("Filed ticket 1.")
    async with discord_bot(mcp_config=config, llm_function_calling=True) as bot:
        await asyncio.wait_for(bot.router.tools_settled(), timeout=30)  # type: ignore[attr-defined]
        message = await fake_discord.user_says("file a ticket to rotate the keys", mention_bot=True)
        thread = str(message["id"])
        await wait_until(lambda: any(buttons(m) for m in fake_discord.sent_in(thread)), timeout=15)
        card = copy.deepcopy(next(m for m in fake_discord.sent_in(thread) if buttons(m)))
        assert "`fake__create_ticket`" in card["content"] and "Rotate the keys" in card["content"]
        await fake_discord.click(button(card, "allow"), message=card, who=BOB)
        await wait_until(lambda: any("Filed ticket 1." in t for t in fake_discord.texts_in(thread)))
        await settle(bot)
        await fake_discord.click(button(card, "deny"), message=card, who=ALICE)  # too late
        await wait_until(lambda: len(fake_discord.followups()) == 1)
        await settle(bot)
    assert buttons(fake_discord.messages[card["id"]]) == []
    assert "Allowed by Bob." in fake_discord.messages[card["id"]]["content"]
    assert not any("Running" in t for t in fake_discord.texts_in(thread))
    note = fake_discord.followups()[0].json
    assert note["content"] == "Bob already allowed that call." and note["flags"] & 64  # ephemeral
    assert tuple(db_rows(db_path, "SELECT state, decided_by_name FROM approvals")[0]) == ("approved", "Bob")


async def test_a_slow_tool_shows_its_status_in_the_streaming_reply_and_not_in_the_final_one(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "mcp.json", {"fake": stdio_entry()})
    fake_llm.call_tools(ScriptedCall("fake__slow", {"seconds": 2.5}), text="Let me wait.")
    fake_llm.reply(" Done waiting.")
    async with discord_bot(mcp_config=config, llm_function_calling=True) as bot:
        await asyncio.wait_for(bot.router.tools_settled(), timeout=30)  # type: ignore[attr-defined]
        message = await fake_discord.user_says("wait a bit", mention_bot=True)
        thread = str(message["id"])
        status = "*Running fake\\_\\_slow…*"

        def reply() -> str:
            texts = fake_discord.texts_in(thread)
            return texts[-1] if texts else ""

        await wait_until(lambda: reply() == f"Let me wait.\n\n{status}", timeout=15)
        await wait_until(lambda: "Done waiting." in reply(), timeout=15)
        await settle(bot)
    assert reply().startswith("Let me wait.") and reply().endswith("Done waiting.") and "Running" not in reply()


NOTE = ("Ship on Friday; tell the team. " * 200)[:4995] + "<END>"  # 5,000 characters, the end marked


async def test_a_long_content_is_cut_on_the_card_path_stays_whole_and_show_all_gives_the_clicker_everything(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "mcp.json", {"fake": stdio_entry()})
    arguments = {"content": NOTE, "path": "notes/plan.md"}  # the model sends content first; the schema says path
    fake_llm.call_tools(ScriptedCall("fake__write_note", arguments), text="Writing it down.")
    fake_llm.reply("Written.")
    async with discord_bot(mcp_config=config, llm_function_calling=True) as bot:
        await asyncio.wait_for(bot.router.tools_settled(), timeout=30)  # type: ignore[attr-defined]
        message = await fake_discord.user_says("write the plan down", mention_bot=True)
        thread = str(message["id"])
        await wait_until(lambda: any(buttons(m) for m in fake_discord.sent_in(thread)), timeout=15)
        card = copy.deepcopy(next(m for m in fake_discord.sent_in(thread) if buttons(m)))
        shown = await fake_discord.click(button(card, "show_all"), message=card, who=BOB)
        await wait_until(lambda: bool(fake_discord.followups_of(shown)))
        await fake_discord.click(button(card, "allow"), message=card, who=ALICE)
        await wait_until(lambda: any("Written." in t for t in fake_discord.texts_in(thread)))
        export = await fake_discord.use_command("export", channel_id=thread)
        await wait_until(lambda: bool(fake_discord.followups_of(export)))
        await settle(bot)
    text = card["content"]
    assert len(text) <= 2000 and "<END>" not in text
    assert '```\npath: "notes/plan.md"\ncontent: "Ship on Friday; tell the team. ' in text
    assert re.search(r'content: "Ship on Friday[^\n]*… \(\+4,[0-9]{3} chars\)\n', text)
    assert [b["label"] for b in buttons(card)] == ["Allow", "Deny", "Show all"]
    [reply] = [c.json for c in fake_discord.followups_of(shown)]
    assert reply["flags"] & 64 and "full arguments of `fake__write_note`" in reply["content"]  # Bob alone sees it
    by_name = {upload.filename: upload for upload in fake_discord.uploads}
    approval_id = button(card, "show_all").split(":")[1]
    full = json.loads(by_name[f"arguments-{approval_id}.json"].content)
    assert list(full.items()) == [("path", "notes/plan.md"), ("content", NOTE)]  # everything, in schema order
    assert not any("<END>" in t for t in fake_discord.texts_in(thread))  # the full text went to Bob alone
    assert buttons(fake_discord.messages[card["id"]]) == [b for b in buttons(card) if b["label"] == "Show all"]
    exported = next(u for u in fake_discord.uploads if u.filename.endswith(".md")).content.decode()
    assert NOTE in exported and "notes/plan.md" in exported
