"""Tool calls end to end on Slack: the router's approval flow, the real MCP server over stdio, slack-bolt.

These need the router side of tools (``bots/approvals.py``, ``bots/tool_turns.py``), which lives on main; on a
branch without it they are skipped, and they run once both sides are merged.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fakes.llm import FakeLLM, ScriptedCall
from tests.fakes.mcp_server import stdio_entry, write_config
from tests.fakes.slack import FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows
from tests.slack.conftest import SlackBotFactory
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
