"""Tool approvals and progress in the terminal: the real router, the console adapter, a real SQLite file.

The approval is asked while a reply is under way (the model has said something and waits on the tool), so
the console must read the answer without waiting for the reply to finish.
"""

from __future__ import annotations

import asyncio
import io
import queue
from pathlib import Path

from bots.app import open_router
from bots.console import chat, console_thread
from bots.render import tool_status
from tests.approval_rows import approval_row, post_approval, stand_in_only
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM
from tests.fakes.waiting import wait_until


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


@stand_in_only
async def test_y_allows_a_tool_call_asked_mid_reply_and_the_status_is_a_line_of_its_own(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    typed, out = TypedLines(), io.StringIO()
    thread = console_thread("ops")
    fake_llm.reply("Hello.")
    fake_llm.reply("Let me check. The disk is fine.")
    async with open_router(make_settings()) as router:
        session = asyncio.create_task(chat(router, thread_name="ops", source=typed, out=out))
        typed.type("hi\n")
        await wait_until(lambda: "bot> Hello." in out.getvalue(), what="the first reply")
        fake_llm.chunk_chars = 13
        resume = fake_llm.pause_after(13)
        typed.type("is the disk full?\n")
        await wait_until(lambda: "Let me check." in out.getvalue(), what="the reply to start")
        outbox = router.outbox(thread)
        await outbox.show_status(thread=thread, text=tool_status("files__read_file"))
        approval_id, _ = await post_approval(
            db_path, outbox, thread, tool="files__read_file", arguments='{"path": "/"}'
        )
        typed.type("y\n")
        await wait_until(lambda: approval_row(db_path, approval_id)[0] == "approved", what="the approval")
        resume.set()
        await wait_until(lambda: "The disk is fine." in out.getvalue(), what="the reply to end")
        typed.type("")
        await asyncio.wait_for(session, timeout=5)
    printed = out.getvalue()
    assert "bot> Let me check.\n(running files__read_file…)\n" in printed
    assert '┌ Allow this tool call? files__read_file\n│ {"path": "/"}\n└ [y] Allow   [n] Deny\n' in printed
    assert "· Allowed by" in printed and "bot>  The disk is fine." in printed
    assert approval_row(db_path, approval_id)[0] == "approved"
    assert "\x1b[" not in printed  # not a terminal: no colour codes
