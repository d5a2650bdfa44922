"""A tool call end to end in the terminal: the router's approval flow, the real MCP server, the console.

The approval is asked while a reply is under way (the model has said something and waits on the tool), so
the console must read the answer without waiting for the reply to finish.
"""

from __future__ import annotations

import asyncio
import io
import queue
from pathlib import Path

import pytest

from bots.app import open_router
from bots.console.adapter import chat
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM, ScriptedCall
from tests.fakes.mcp_server import stdio_entry, write_config
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows

pytestmark = pytest.mark.slow  # starts an MCP server process


class TypedLines(io.StringIO):
    """stdin as a person types it: each readline blocks until the test types the next line ("" is Ctrl-D)."""

    def __init__(self) -> None:
        super().__init__()
        self._lines: queue.Queue[str] = queue.Queue()

    def type(self, line: str) -> None:
        self._lines.put(line)

    def readline(self, size: int | None = -1) -> str:
        return self._lines.get(timeout=10)

    def isatty(self) -> bool:
        return False


async def test_y_allows_the_call_the_reply_is_waiting_on(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "mcp.json", {"fake": stdio_entry()})
    typed, out = TypedLines(), io.StringIO()
    fake_llm.call_tools(ScriptedCall("fake__create_ticket", {"title": "Rotate the keys"}), text="Filing it.")
    fake_llm.reply("Filed ticket 1.")
    async with open_router(make_settings(mcp_config=config, llm_function_calling=True)) as router:
        session = asyncio.create_task(chat(router, thread_name="ops", source=typed, out=out))
        await asyncio.wait_for(router.tools_settled(), timeout=30)  # type: ignore[attr-defined]
        typed.type("file a ticket to rotate the keys\n")
        await wait_until(lambda: "[y] Allow   [n] Deny" in out.getvalue(), timeout=15, what="the approval card")
        typed.type("y\n")
        await wait_until(lambda: "Filed ticket 1." in out.getvalue(), timeout=15, what="the answer")
        typed.type("")
        await asyncio.wait_for(session, timeout=5)
    printed = out.getvalue()
    assert "┌ Allow this tool call? fake__create_ticket" in printed and "Rotate the keys" in printed
    assert "(running fake__create_ticket…)" in printed
    assert tuple(db_rows(db_path, "SELECT state FROM approvals")[0]) == ("approved",)


async def test_the_console_prints_every_argument_in_full_in_the_tools_order(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "mcp.json", {"fake": stdio_entry()})
    typed, out = TypedLines(), io.StringIO()
    note = ("Ship on Friday. " * 400)[:4995] + "<END>"
    call = ScriptedCall("fake__write_note", {"content": note, "path": "notes/plan.md\x1b[2J"})
    fake_llm.call_tools(call, text="Writing it.")
    fake_llm.reply("Written.")
    async with open_router(make_settings(mcp_config=config, llm_function_calling=True)) as router:
        session = asyncio.create_task(chat(router, thread_name="ops", source=typed, out=out))
        await asyncio.wait_for(router.tools_settled(), timeout=30)  # type: ignore[attr-defined]
        typed.type("write the plan down\n")
        await wait_until(lambda: "[y] Allow   [n] Deny" in out.getvalue(), timeout=15, what="the approval card")
        typed.type("n\n")
        await wait_until(lambda: "Denied by" in out.getvalue(), timeout=15, what="the refusal")
        typed.type("")
        await asyncio.wait_for(session, timeout=5)
    card = out.getvalue().split("┌ Allow this tool call? fake__write_note\n")[1].split("└")[0]
    assert card == f'│ {{\n│   "path": "notes/plan.md\\u001b[2J",\n│   "content": "{note}"\n│ }}\n'
