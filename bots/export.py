"""A thread's log as Markdown or JSON, with the tool trail where it happened (``threadkeeper export``).

Trail entries go after the message their turn answered and before the reply that followed, as in the catch-up
transcript. Deleted messages show as tombstones; their text is gone from the log, so it cannot be exported.
"""

from __future__ import annotations

import json

from storage.records import LoggedMessage, ThreadRecord, TrailEntry, interleave

APPROVAL_WORDS = {
    "approved": "allowed by {who}",
    "denied": "denied by {who}",
    "timed_out": "nobody approved it in time",
}


def _approval(entry: TrailEntry) -> str:
    words = APPROVAL_WORDS.get(entry.approval)
    return "" if words is None else f" ({words.format(who=entry.decided_by or 'someone')})"


def as_markdown(thread: ThreadRecord, messages: list[LoggedMessage], trail: list[TrailEntry]) -> str:
    lines = [f"# {thread.title or thread.thread}", ""]
    for item in interleave(messages, trail):
        if isinstance(item, TrailEntry):
            outcome = "error" if item.is_error else "result"
            lines += [
                f"> 🔧 **{item.tool}**{_approval(item)} · {item.created_utc} · {item.duration_ms} ms",
                f"> arguments: `{item.arguments_json}`",
                f"> {outcome}: {' '.join(item.result_excerpt.split())[:500]}",
                "",
            ]
            continue
        body = "*(deleted)*" if item.deleted else item.content
        mark = " *(edited)*" if item.edited else ""
        lines += [f"**{item.author_name}** · {item.sent_utc}{mark}", "", body, ""]
    return "\n".join(lines)


def as_json(thread: ThreadRecord, messages: list[LoggedMessage], trail: list[TrailEntry]) -> str:
    """``messages`` as before, and ``tool_calls`` each naming the platform id of the message it came after."""
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
                "attachments": m.attachments,
                "sent_utc": m.sent_utc,
                "edited": m.edited,
                "deleted": m.deleted,
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
                "at_utc": e.created_utc,
            }
            for e in sorted(trail, key=lambda e: (e.after_message_id, e.id))
        ],
    }
    return json.dumps(payload, indent=2, ensure_ascii=False)
