"""The in-thread commands typed in the terminal: /retry, /model, /reply, /memory, /export and /forget (then y)."""

from __future__ import annotations

import io
from pathlib import Path

from bots.app import open_router
from bots.console.adapter import chat
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM
from tests.router_harness import db_rows


async def test_every_command_in_the_console_including_forget_after_y(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path, tmp_path: Path
) -> None:
    fake_llm.reply("First try.")
    fake_llm.reply("Second try.")
    lines = "\n".join(
        [
            "what is the plan?",
            "/retry",
            "/model fake-big",
            "/memory",
            "/export",
            "/forget",
            "no",
            "/forget",
            "y",
        ]
    )
    out = io.StringIO()
    async with open_router(make_settings(llm_models="openai/fake,openai/fake-big")) as router:
        await chat(router, thread_name="plans", source=io.StringIO(lines + "\n"), out=out, export_dir=tmp_path)
    printed = out.getvalue()
    assert "bot> First try.\n" in printed and "bot> Second try.\n" in printed
    assert "(only you can see this) Writing a new answer" in printed
    assert "(only you can see this) This thread now uses openai/fake-big." in printed
    assert "Model: openai/fake-big\nMessages in my session: 2\n" in printed
    exported = tmp_path / "thread-console-plans.md"
    assert f"(saved to {exported})" in printed
    assert "> First try." in exported.read_text() and "*(replaced by a retry)*" in exported.read_text()
    assert printed.count("[y] Forget this thread") == 2
    assert "Kept: nothing was forgotten." in printed
    assert "asked me to forget this thread" in printed
    assert db_rows(db_path, "SELECT COUNT(*) AS n FROM messages")[0]["n"] == 0


async def test_console_commands_on_an_orphaned_thread_explain_the_card(
    make_settings: MakeSettings, fake_llm: FakeLLM
) -> None:
    async with open_router(make_settings()) as router:
        await chat(router, thread_name="ops", source=io.StringIO("hello\n"), out=io.StringIO())
    out = io.StringIO()
    async with open_router(make_settings()) as router:
        await chat(router, thread_name="ops", source=io.StringIO("again\n/retry\n/memory\n"), out=out)
    printed = out.getvalue()
    assert "Where were we?" in printed
    assert printed.count('choose "Catch me up" or "Start fresh" on the card first') == 2
    assert "Model: openai/fake" in printed


async def test_reply_mention_in_the_console_leaves_lines_without_a_mention_for_context(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    lines = ["first question", "/reply mention", "a note to myself", "@threadkeeper what did I note?", "/reply"]
    out = io.StringIO()
    async with open_router(make_settings(reply_mode="auto")) as router:
        await chat(router, thread_name="notes", source=io.StringIO("\n".join(lines) + "\n"), out=out)
    printed = out.getvalue()
    assert "(only you can see this) Reply mode here is now mention" in printed
    assert "(only you can see this) Reply mode here: mention" in printed
    assert printed.count("bot> ") == 2  # the first question and the mention; the note is only logged
    last = [r for r in fake_llm.requests if r.stream][-1].prompt_text
    assert "a note to myself" in last and "what did I note?" in last
    rows = db_rows(db_path, "SELECT content, reply_state FROM messages WHERE role = 'user' ORDER BY id")
    assert [(r["content"], r["reply_state"]) for r in rows] == [
        ("first question", "answered"),
        ("a note to myself", "answered"),
        ("@threadkeeper what did I note?", "answered"),
    ]
