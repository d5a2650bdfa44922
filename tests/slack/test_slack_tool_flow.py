"""Tool calls end to end on Slack: the router's approval flow, the real MCP server over stdio, slack-bolt.

These need the router side of tools (``bots/tools/approvals.py``, ``bots/tools/tool_turns.py``), which lives on
main; on a branch without it they are skipped, and they run once both sides are merged.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.llm import FakeLLM, ScriptedCall
from tests.fakes.mcp_server import stdio_entry, write_config
from tests.fakes.slack import FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows
from tests.slack.conftest import SlackBotFactory
from tests.slack.test_slack_commands import shortcut
from tests.slack.test_slack_socket_mode import replies_in, settle

pytestmark = pytest.mark.slow  # each test starts an MCP server process


def approval_posts(fake: FakeSlack, thread_ts: str) -> list[dict[str, object]]:
    return [
        c.params
        for c in fake.posts(thread_ts=thread_ts)
        if any(str(b.get("block_id", "")).startswith("tk-approval") for b in c.params.get("blocks") or [])
    ]


async def test_allow_in_slack_runs_the_call_and_a_refused_status_falls_back_to_the_reply(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "mcp.json", {"fake": stdio_entry()})
    fake_slack.set_status_error = "not_allowed"
    fake_llm.call_tools(ScriptedCall("fake__create_ticket", {"title": "Rotate the keys"}), text="Filing it.")
    fake_llm.call_tools(ScriptedCall("fake__slow", {"seconds": 2.5}))
    fake_llm.reply(" Filed ticket 1.")
    async with slack_bot(mcp_config=config, llm_function_calling=True) as bot:
        await asyncio.wait_for(bot.router.tools_settled(), timeout=30)  # type: ignore[attr-defined]
        mention = Payloads.mention("file a ticket to rotate the keys")
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: bool(approval_posts(fake_slack, mention["ts"])), timeout=15)
        card = approval_posts(fake_slack, mention["ts"])[0]
        value = card["blocks"][2]["elements"][0]["value"]  # type: ignore[index]
        await fake_slack.send(
            Payloads.click(str(value), user="UBOB", message_ts=str(card["_ts"]), thread_ts=mention["ts"]),
            kind="interactive",
        )
        await wait_until(
            lambda: any(t.endswith("_Running fake__slow…_") for t in replies_in(fake_slack, mention["ts"])), timeout=15
        )
        await wait_until(lambda: any("Filed ticket 1." in t for t in replies_in(fake_slack, mention["ts"])), timeout=15)
        await settle(bot)
        late = Payloads.click(str(value), user="UALICE", message_ts=str(card["_ts"]), thread_ts=mention["ts"])
        await fake_slack.send(late, kind="interactive")
        await wait_until(lambda: bool(fake_slack.calls_to("chat.postEphemeral")))
        await settle(bot)
    assert tuple(db_rows(db_path, "SELECT state, decided_by_name FROM approvals")[0]) == ("approved", "Bob")
    assert "Allowed by Bob." in str(fake_slack.current_blocks(str(card["_ts"])))
    assert not any("Running" in t for t in replies_in(fake_slack, mention["ts"]))
    assert len(fake_slack.calls_to("assistant.threads.setStatus")) == 1  # refused once, then not asked again
    assert fake_slack.calls_to("chat.postEphemeral")[0].params["text"] == "Bob already allowed that call."


NOTE = ("Ship on Friday; tell the team. " * 200)[:4995] + "<END>"  # 5,000 characters, the end marked


def code_of(section: dict[str, Any]) -> str:
    """The text of a code section as a reader sees it (fences off, Slack's escaping undone)."""
    text = str(section["text"]["text"])
    assert text.startswith("```") and text.endswith("```") and len(text) <= 3000
    return text[3:-3].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


async def test_a_long_content_is_cut_on_the_slack_card_and_show_all_gives_the_clicker_everything(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "mcp.json", {"fake": stdio_entry()})
    arguments = {"content": NOTE, "path": "notes/plan.md"}  # the model sends content first; the schema says path
    fake_llm.call_tools(ScriptedCall("fake__write_note", arguments), text="Writing it down.")
    fake_llm.reply(" Written.")
    async with slack_bot(mcp_config=config, llm_function_calling=True) as bot:
        await asyncio.wait_for(bot.router.tools_settled(), timeout=30)  # type: ignore[attr-defined]
        mention = Payloads.mention("write the plan down")
        thread = mention["ts"]
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: bool(approval_posts(fake_slack, thread)), timeout=15)
        card = approval_posts(fake_slack, thread)[0]
        blocks: list[dict[str, Any]] = card["blocks"]  # type: ignore[assignment]
        [actions] = [b for b in blocks if b["type"] == "actions"]
        values = {e["text"]["text"]: str(e["value"]) for e in actions["elements"]}
        click = Payloads.click(values["Show all"], user="UBOB", message_ts=str(card["_ts"]), thread_ts=thread)
        await fake_slack.send(click, kind="interactive")
        await wait_until(lambda: bool(fake_slack.ephemerals(user="UBOB")))
        allow = Payloads.click(values["Allow"], user="UALICE", message_ts=str(card["_ts"]), thread_ts=thread)
        await fake_slack.send(allow, kind="interactive")
        await wait_until(lambda: any("Written." in t for t in replies_in(fake_slack, thread)), timeout=15)
        await shortcut(fake_slack, "tk_export", thread, user="UALICE")
        await wait_until(lambda: bool(fake_slack.shared_files()))
        await settle(bot)
    shown = code_of(blocks[1])
    assert shown.startswith('path: "notes/plan.md"\ncontent: "Ship on Friday; tell the team. ')
    assert re.search(r'content: "Ship on Friday[^\n]*… \(\+4,[0-9]{3} chars\)$', shown) and "<END>" not in shown
    assert values["Show all"] == f"tk-args:{values['Allow'].split(':')[1]}:show_all"  # the id, never the arguments
    [reply] = fake_slack.ephemerals(user="UBOB")
    assert reply["thread_ts"] == thread and len(reply["blocks"]) <= 50
    full = "".join(code_of(b) for b in reply["blocks"][1:])
    assert list(json.loads(full.replace("\u200b", "")).items()) == [("path", "notes/plan.md"), ("content", NOTE)]
    assert not any("blocks" in e for e in fake_slack.ephemerals(user="UALICE"))  # Bob alone saw it (Alice: export)
    assert not any("<END>" in t for t in replies_in(fake_slack, thread))
    [(_channel, _title, exported)] = fake_slack.shared_files()
    assert NOTE in exported.decode() and "notes/plan.md" in exported.decode()
