"""Stops in the terminal. Ctrl-C while an answer is being written stops that answer (the router's stop flow) and
the console goes on; at the prompt Ctrl-C keeps its usual meaning. And the loop guard: a model calling the same
tool with the same arguments a third time is stopped, and the answer says so."""

from __future__ import annotations

import asyncio
import getpass
import io
import os
import queue
import signal
from pathlib import Path

import pytest

from bots.app import open_router
from bots.console.adapter import chat
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM, ScriptedCall, ToolCallReply
from tests.fakes.mcp_server import stdio_entry, write_config
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows

PARTIAL = "The first half of the answer."


class TypedLines(io.StringIO):
    """A terminal the test types into: ``readline`` waits for the next line; ``end`` is Ctrl-D."""

    def __init__(self) -> None:
        super().__init__()
        self._lines: queue.Queue[str] = queue.Queue()

    def type(self, line: str) -> None:
        self._lines.put(line + "\n")

    def end(self) -> None:
        self._lines.put("")

    def readline(self, size: int | None = -1, /) -> str:
        return self._lines.get(timeout=30)

    def isatty(self) -> bool:
        return False


async def test_ctrl_c_while_an_answer_streams_stops_it_and_the_next_question_is_answered(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.chunk_chars = 5
    fake_llm.reply(PARTIAL + " The second half, which nobody should ever see.")
    held = fake_llm.pause_after(len(PARTIAL))
    fake_llm.reply("Picking up where I was stopped.")
    out, terminal = io.StringIO(), TypedLines()
    prompt_handler = signal.getsignal(signal.SIGINT)
    async with open_router(make_settings(llm_timeout_s=30)) as router:
        chatting = asyncio.create_task(chat(router, thread_name="ops", source=terminal, out=out))
        terminal.type("explain it all")
        await wait_until(lambda: PARTIAL in out.getvalue(), timeout=15)
        await wait_until(lambda: signal.getsignal(signal.SIGINT) is not prompt_handler)  # the answer's Ctrl-C is ours
        os.kill(os.getpid(), signal.SIGINT)
        await wait_until(lambda: "(Stopped by" in out.getvalue())
        held.set()
        terminal.type("go on")
        await wait_until(lambda: "Picking up where I was stopped." in out.getvalue(), timeout=15)
        terminal.end()
        await asyncio.wait_for(chatting, timeout=10)
    assert signal.getsignal(signal.SIGINT) is prompt_handler  # Ctrl-C at the prompt quits, as before
    printed = out.getvalue()
    assert printed.startswith(f"bot> {PARTIAL}") and "second half" not in printed
    assert f"\n\n(Stopped by `{getpass.getuser()}`.)\nbot> Picking up where I was stopped.\n" in printed
    logged = db_rows(db_path, "SELECT content FROM messages WHERE role = 'assistant' ORDER BY id")
    assert logged[0]["content"].endswith(f"(Stopped by `{getpass.getuser()}`.)")
    history = [m for m in fake_llm.requests[1].messages if m["role"] == "assistant"]
    assert history[0]["content"].endswith(f"(Stopped by `{getpass.getuser()}`.)")


@pytest.mark.slow  # starts the MCP fake's process
async def test_the_same_lookup_a_third_time_is_not_run_and_the_answer_says_a_loop_was_stopped(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "mcp.json", {"fake": stdio_entry()})
    fake_llm.reply_with(
        lambda body: (
            ToolCallReply(calls=(ScriptedCall("fake__lookup", {"key": "k"}),))
            if body.get("tools")
            else "I kept getting the same value."
        )
    )
    out, terminal = io.StringIO(), TypedLines()
    async with open_router(make_settings(mcp_config=config, llm_function_calling=True)) as router:
        chatting = asyncio.create_task(chat(router, thread_name="ops", source=terminal, out=out))
        await asyncio.wait_for(router.tools_settled(), timeout=30)  # type: ignore[attr-defined]
        terminal.type("look k up until it changes")
        await wait_until(lambda: "I stopped a loop here" in out.getvalue(), timeout=15)
        terminal.end()
        await asyncio.wait_for(chatting, timeout=10)
    assert "bot> I kept getting the same value.\n\n(I stopped a loop here: fake__lookup was asked for 3 times" in (
        out.getvalue()
    )
    rows = db_rows(db_path, "SELECT tool, is_error, result_excerpt FROM tool_calls ORDER BY id")
    assert [(r["tool"], r["is_error"]) for r in rows] == [("fake__lookup", 0), ("fake__lookup", 0), ("fake__lookup", 1)]
    assert "Not run" in rows[2]["result_excerpt"]
    assert len(fake_llm.requests) == 4 and fake_llm.requests[-1].tools is None


@pytest.mark.slow  # starts the MCP fake's process
async def test_ctrl_c_while_a_tool_runs_lets_it_finish_and_starts_no_further_step(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "mcp.json", {"fake": stdio_entry()})
    fake_llm.call_tools(ScriptedCall("fake__slow", {"seconds": 1.5}), text="Let me wait.")
    fake_llm.reply("A step the stop should have prevented.")
    out, terminal = io.StringIO(), TypedLines()
    prompt_handler = signal.getsignal(signal.SIGINT)
    async with open_router(make_settings(mcp_config=config, llm_function_calling=True)) as router:
        chatting = asyncio.create_task(chat(router, thread_name="ops", source=terminal, out=out))
        await asyncio.wait_for(router.tools_settled(), timeout=30)  # type: ignore[attr-defined]
        terminal.type("wait a bit")
        await wait_until(lambda: "(running fake__slow" in out.getvalue().lower(), timeout=15)
        await wait_until(lambda: signal.getsignal(signal.SIGINT) is not prompt_handler)
        os.kill(os.getpid(), signal.SIGINT)
        await wait_until(lambda: "(Stopped by" in out.getvalue(), timeout=15)
        terminal.end()
        await asyncio.wait_for(chatting, timeout=10)
    assert len(fake_llm.requests) == 1  # no model step after the stop
    rows = db_rows(db_path, "SELECT tool, result_excerpt FROM tool_calls")
    assert [(r["tool"], r["result_excerpt"]) for r in rows] == [("fake__slow", "slept 1.5s")]  # let finish
    assert "Let me wait." in out.getvalue() and "should have prevented" not in out.getvalue()
