"""A thread's log as Markdown or JSON, with the tool trail where it happened (``threadkeeper export``).

Trail entries go after the message their turn answered and before the reply that followed, as in the catch-up
transcript. Feedback (👍 / 👎) shows under the answer it was given on. Deleted messages show as tombstones;
their text is gone from the log, so it cannot be exported. A voice message's transcript follows its text. An
answer a retry replaced is kept, quoted and marked as replaced, so it never reads as the thread's answer. The
in-thread ``export`` command sends the same Markdown as a file (:func:`markdown_filename`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from bots.files.voice import said
from bots.operator.log_escape import escape_controls, json_line, terminal_safe
from storage.records import FeedbackEntry, LoggedMessage, ThreadRecord, TrailEntry, interleave

APPROVAL_WORDS = {
    "approved": "allowed by {who}",
    "denied": "denied by {who}",
    "timed_out": "nobody approved it in time",
}


def _approval(entry: TrailEntry) -> str:
    words = APPROVAL_WORDS.get(entry.approval)
    return "" if words is None else f" ({words.format(who=escape_controls(entry.decided_by or 'someone'))})"


FEEDBACK_MARKS = {"positive": "👍", "negative": "👎"}


def as_markdown(
    thread: ThreadRecord, messages: list[LoggedMessage], trail: list[TrailEntry], feedback: Sequence[FeedbackEntry] = ()
) -> str:
    """The thread as a Markdown document; names and titles kept on their line, control characters escaped."""
    lines = [f"# {escape_controls(thread.title or thread.thread)}", ""]
    for item in interleave(messages, trail):
        if isinstance(item, TrailEntry):
            outcome = "error" if item.is_error else "result"
            lines += [
                f"> 🔧 **{escape_controls(item.tool)}**{_approval(item)}{_state(item)} · {item.created_utc} · "
                f"{item.duration_ms} ms",
                f"> arguments: `{item.arguments_json}`",
                f"> {outcome}: {' '.join(item.result_excerpt.split())[:500]}",
                "",
            ]
            continue
        body = "*(deleted)*" if item.deleted else "\n\n".join(said(item.content, item.transcript))
        mark = " *(edited)*" if item.edited else ""
        if item.replaced and not item.deleted:
            mark += " *(replaced by a retry)*"
            body = "\n".join(f"> {line}" for line in body.splitlines())
        lines += [f"**{escape_controls(item.author_name)}** · {item.sent_utc}{mark}", "", body, ""]
        given = [
            f"{FEEDBACK_MARKS[f.rating]} {escape_controls(f.user_name)}" for f in feedback if f.message_id == item.id
        ]
        if given:
            lines += [f"> feedback: {', '.join(given)}", ""]
    return terminal_safe("\n".join(lines))


def as_json(
    thread: ThreadRecord, messages: list[LoggedMessage], trail: list[TrailEntry], feedback: Sequence[FeedbackEntry] = ()
) -> str:
    """``messages`` as before, ``tool_calls`` each naming the platform id of the message it came after, and
    ``feedback`` naming the answer it was given on."""
    platform_ids = {m.id: m.platform_message_id for m in messages}
    payload = {
        "thread": {k: getattr(thread, k) for k in ("platform", "workspace", "channel", "thread", "title")},
        "messages": [
            {
                "id": m.platform_message_id,
                "author_id": m.author_id,
                "author": m.author_name,
                "role": m.role,
                "content": m.content,
                "transcript": m.transcript,
                "attachments": m.attachments,
                "sent_utc": m.sent_utc,
                "edited": m.edited,
                "deleted": m.deleted,
                "replaced": m.replaced,
            }
            for m in messages
        ],
        "tool_calls": [
            {
                "after": platform_ids.get(e.after_message_id),
                "tool": e.tool,
                "arguments": json.loads(e.arguments_json),
                "result": e.result_excerpt,
                "is_error": e.is_error,
                "duration_ms": e.duration_ms,
                "approval": e.approval,
                "decided_by": e.decided_by,
                "state": e.state,  # the turn journal's: where the call ended (or stopped)
                "at_utc": e.created_utc,
            }
            for e in sorted(trail, key=lambda e: (e.after_message_id, e.id))
        ],
        "feedback": [
            {
                "answer": f.platform_message_id,
                "user_id": f.user_id,
                "user": f.user_name,
                "rating": f.rating,
                "at_utc": f.given_utc,
            }
            for f in feedback
        ],
    }
    return json_line(json.dumps(payload, indent=2, ensure_ascii=False))


def markdown_filename(thread: ThreadRecord) -> str:
    """A safe file name for the thread's Markdown export, made from its ids only.

    Never from its title: a title is made from a message, and a file name outlives the message wherever the
    file was sent or saved.
    """
    return f"thread-{thread.platform}-{re.sub(r'[^A-Za-z0-9]', '', thread.thread)[:40]}.md"


def _state(entry: TrailEntry) -> str:
    """A call that did not end as a plain run says where it stopped (the turn journal's state)."""
    return "" if entry.state in ("done", "failed") else f" · {entry.state}"
