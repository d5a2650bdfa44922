"""The approval card's argument lines (``bots/tools/approval_arguments.py``): every key shown, each value cut alone."""

from __future__ import annotations

import json

from bots.replies.render import approval_message
from bots.seam.messages import ThreadKey
from bots.seam.ports import ApprovalCard, ApprovalState, FullArguments
from bots.slack.arguments import full_arguments_blocks
from bots.slack.mrkdwn import escape
from bots.tools.approval_arguments import argument_summary, full_arguments, ordered_arguments

SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}}}


def test_keys_follow_the_schema_then_the_extras_in_the_order_the_model_sent_them() -> None:
    arguments = {"zeta": 1, "content": "hi", "alpha": 2, "path": "a.md"}
    ordered = ordered_arguments(arguments, json.dumps(arguments), SCHEMA)
    assert list(json.loads(ordered)) == ["path", "content", "zeta", "alpha"]
    assert ordered_arguments({}, "[1, 2]", SCHEMA) == "[1, 2]"  # not an object: kept as sent


def test_a_long_value_is_cut_by_itself_and_every_other_key_stays_whole() -> None:
    arguments = ordered_arguments({"content": "x" * 5000, "path": "notes/plan.md", "mode": "w"}, "", SCHEMA)
    summary = argument_summary(arguments, limit=1800)
    lines = summary.text.split("\n")
    assert lines[0] == 'path: "notes/plan.md"' and lines[2] == 'mode: "w"'
    assert lines[1].startswith('content: "xxx') and lines[1].endswith("… (+4,602 chars)")
    assert not summary.complete and len(summary.text) <= 1800


def test_short_arguments_are_shown_whole_and_need_no_show_all() -> None:
    summary = argument_summary('{"title": "Rotate the keys", "priority": 2}', limit=1800)
    assert summary.text == 'title: "Rotate the keys"\npriority: 2' and summary.complete
    assert argument_summary("{}", limit=100).text == "(no arguments)"


def test_values_are_cut_shorter_before_any_key_is_left_off() -> None:
    arguments = json.dumps({f"field_{i}": "y" * 500 for i in range(20)})
    summary = argument_summary(arguments, limit=1800)
    lines = summary.text.split("\n")
    assert [line.split(":")[0] for line in lines] == [f"field_{i}" for i in range(20)]
    assert all(line.endswith(" chars)") for line in lines) and len(summary.text) <= 1800


def test_too_many_keys_say_how_many_are_hidden_within_the_limit_as_the_platform_counts_it() -> None:
    arguments = json.dumps({f"<k{i}>": "&" * 40 for i in range(1000)})
    summary = argument_summary(arguments, limit=2994, cost=lambda text: len(escape(text)))
    lines = summary.text.split("\n")
    assert lines[-1] == f"… {1000 - len(lines) + 1:,} more arguments are not shown here; Show all has them."
    assert len(escape(summary.text)) <= 2994 and not summary.complete


def test_no_argument_can_break_a_line_hide_text_or_close_the_code_block() -> None:
    hostile = {"a\nb": "line\u2028two\u202eevil", "tick": "````` ``` ````", "zero\u200bwidth": "\x1b[2J"}
    summary = argument_summary(json.dumps(hostile), limit=1800)
    assert summary.text.count("\n") == 2 and "```" not in summary.text and "``" not in summary.text
    assert '"a\\nb": "line\\u2028two\\u202eevil"' in summary.text
    assert '"zero\\u200bwidth": "\\u001b[2J"' in summary.text


def test_the_discord_card_stays_under_2000_characters_and_asks_for_show_all_only_when_something_is_cut() -> None:
    thread = ThreadKey("discord", "g", "c", "t")
    long = ApprovalCard(1, thread, "fs__write", json.dumps({"k" * 300: "v" * 9000}), ApprovalState.DENIED, "B" * 32)
    text, show_all = approval_message(long)
    assert len(text) <= 2000 and show_all and text.endswith("Denied by " + "B" * 32 + ".")
    short = ApprovalCard(2, thread, "fs__write", '{"path": "a.md"}', ApprovalState.PENDING)
    expected = '**Allow this tool call?**\nI want to run `fs__write` with:\n```\npath: "a.md"\n```'
    assert approval_message(short) == (expected, False)


def test_show_all_gives_the_stored_arguments_indented_in_their_order_or_the_text_as_it_was() -> None:
    assert full_arguments('{"path": "a", "content": "b"}') == '{\n  "path": "a",\n  "content": "b"\n}'
    assert full_arguments('{"cut": "an older row\n…') == '{"cut": "an older row\n…'


def test_slacks_show_all_splits_at_line_breaks_and_never_passes_50_blocks() -> None:
    text = full_arguments(json.dumps({f"line{i}": "<&>" * 30 for i in range(3000)}))
    blocks = full_arguments_blocks(FullArguments(7, "fs__write", text))
    sections = [b["text"]["text"] for b in blocks[1:-1]]
    assert len(blocks) == 50 and all(len(s) <= 3000 and s.endswith('",\n```') for s in sections)
    assert blocks[-1]["type"] == "context" and "more characters are left off" in blocks[-1]["elements"][0]["text"]
