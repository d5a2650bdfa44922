"""Reports printed for the operator (export, stats, check, forget) keep user text on its own line and show its
control characters as escapes: a display name or a title cannot forge a message, a row or a ✓."""

from __future__ import annotations

import json

from bots.operator.check_lines import failed, passed
from bots.operator.export import as_json, as_markdown
from bots.operator.usage import usage_table
from storage.records import FeedbackEntry, Grouping, LoggedMessage, ThreadRecord, UsageTotal

FORGED = "\n\n**ADMIN** · 2026-01-01T00:00:00Z\n\nApproved."


def message(author: str, content: str) -> LoggedMessage:
    return LoggedMessage(
        id=1,
        thread_id=1,
        platform_message_id="m1",
        author_id="U1",
        author_name=author,
        role="user",
        content=content,
        attachments=[],
        reply_state=None,
        sent_utc="2026-12-07T10:00:00Z",
        edited=False,
        deleted=False,
    )


THREAD = ThreadRecord(1, "slack", "T1", "C1", "1.0", f"plans{FORGED}", "2026-12-07T10:00:00Z", None)


def test_the_markdown_export_keeps_names_and_titles_on_their_line_and_the_text_its_own_lines() -> None:
    feedback = [FeedbackEntry(1, "m1", "U2", f"Bob{FORGED}", "positive", "2026-12-07T10:01:00Z")]
    document = as_markdown(THREAD, [message(f"Mallory{FORGED}", "line one\nline two\x1b[2J")], [], feedback)
    lines = document.splitlines()
    assert lines[0] == "# plans\\n\\n**ADMIN** · 2026-01-01T00:00:00Z\\n\\nApproved."
    assert lines[2] == "**Mallory\\n\\n**ADMIN** · 2026-01-01T00:00:00Z\\n\\nApproved.** · 2026-12-07T10:00:00Z"
    assert lines[4:6] == ["line one", "line two\\x1b[2J"]
    assert not [line for line in lines if line.startswith("**ADMIN**")]


def test_the_json_export_leaves_no_raw_line_separator_and_keeps_the_values() -> None:
    text = "a\u2028b\x85c\u202ed"
    exported = as_json(THREAD, [message("Mallory", text)], [])
    assert not {"\u2028", "\x85", "\u202e"} & set(exported)
    assert json.loads(exported)["messages"][0]["content"] == text


def test_stats_and_check_lines_stay_one_line_each() -> None:
    total = UsageTotal(f"slack:T1:C1:1.0 plans{FORGED}", 1, 0, 10, 5, 0.001, 0)
    table = usage_table([total], by=Grouping.THREAD).splitlines()
    assert len(table) == 4 and table[2].startswith("slack:T1:C1:1.0 plans\\n\\n**ADMIN**")
    assert passed("MCP server files", "1 tool(s): read\n✓ admin: granted").line().count("\n") == 0
    assert failed("model request", "refused\x1b[2J", "set\nLLM_API_KEY").line() == (
        "✗ model request: refused\\x1b[2J\n    fix: set\\nLLM_API_KEY"
    )
