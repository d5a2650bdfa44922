"""Files in the terminal: ``/attach PATH…`` sends files on this machine with the next message, same pipeline."""

from __future__ import annotations

import io
import json
from pathlib import Path

from bots.app import open_router
from bots.console.adapter import chat
from tests.attachment_files import pdf, png
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM
from tests.router_harness import db_rows


class Piped(io.StringIO):
    def isatty(self) -> bool:
        return False


async def test_attach_then_ask_inlines_text_and_pdf_and_notes_an_image_and_a_missing_path(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path, tmp_path: Path
) -> None:
    (tmp_path / "todo.md").write_text("- ship the release\n")
    (tmp_path / "q3.pdf").write_bytes(pdf("Margins grew 3 points"))
    (tmp_path / "shot.png").write_bytes(png())
    lines = [
        f"/attach {tmp_path / 'todo.md'} '{tmp_path / 'q3.pdf'}' {tmp_path / 'shot.png'} {tmp_path / 'nope.txt'}",
        "what do these say?",
        "and without files?",
    ]
    out = io.StringIO()
    fake_llm.reply("A todo, a report and a picture.")
    fake_llm.reply("Nothing attached this time.")
    async with open_router(make_settings()) as router:
        await chat(router, thread_name="files", source=Piped("\n".join(lines) + "\n"), out=out)
    printed = out.getvalue()
    assert "(attached todo.md, q3.pdf, shot.png: they go with your next message)" in printed
    assert f"(no such file: {tmp_path / 'nope.txt'})" in printed
    first = fake_llm.requests[0].body["messages"][-1]["content"]
    assert "[attachment: todo.md (text/markdown, 19 bytes)]\n- ship the release" in first
    assert "Margins grew 3 points" in first
    assert "[attachment: shot.png (image/png, " in first and "not read: this model cannot see images]" in first
    assert "[attachment:" not in fake_llm.requests[1].body["messages"][-1]["content"]  # files go with one message
    rows = db_rows(db_path, "SELECT attachments_json FROM messages WHERE role = 'user' ORDER BY id")
    assert [a["used"] for a in json.loads(rows[0][0])] == ["inlined", "inlined", "noted"]
    assert "ship the release" not in rows[0][0]
