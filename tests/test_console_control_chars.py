"""What the model writes is shown in the terminal, never obeyed: an answer carrying terminal escape sequences
(write the clipboard, clear the screen, overwrite the line) prints them as text, and so does its export."""

from __future__ import annotations

import io
from pathlib import Path

from bots.app import open_router
from bots.console.adapter import chat
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM

HOSTILE = "Done.\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\rAll good\u202e"
SHOWN = "Done.\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b[2J\\rAll good\\u202e"


async def test_an_answer_with_terminal_escapes_is_printed_and_exported_as_text(
    make_settings: MakeSettings, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    fake_llm.reply(f"{HOSTILE}\nSecond line.")
    out = io.StringIO()
    async with open_router(make_settings()) as router:
        source = io.StringIO("clean up please\n/export\n")
        await chat(router, thread_name="escapes", source=source, out=out, export_dir=tmp_path)
    printed = out.getvalue()
    assert f"bot> {SHOWN}\nSecond line.\n" in printed
    assert not {"\x1b", "\x07", "\r", "\u202e"} & set(printed)
    exported = (tmp_path / "thread-console-escapes.md").read_text(encoding="utf-8")  # named from ids, not the title
    assert f"{SHOWN}\nSecond line." in exported and "\x1b" not in exported
