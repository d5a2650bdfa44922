"""Rendering shared by every adapter: message splitting, the streaming throttle and the card's words.

Platforms differ in limits (Discord 2,000 characters a message, Slack about 3,500 a chunk) and in markup, but
not in the rules: never split inside a code block, prefer paragraph then line boundaries, and edit a streaming
message no more than about once a second.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing

from agent.stopping import literal_name
from bots.replies.streaming import throttled_snapshots
from bots.seam.ports import ApprovalCard, ApprovalState, CardState, CatchUpCard
from bots.tools.approval_arguments import argument_summary

CARD_TITLE = "Where were we?"
CARD_BODY = (
    "I restarted and lost my place in this conversation. I can skim the thread and catch up, or we can start fresh."
)
CATCH_UP_LABEL = "Catch me up"
FRESH_LABEL = "Start fresh"
FENCE = "```"
MAX_FENCE_TAG = 20


def card_status_line(card: CatchUpCard) -> str:
    """One line saying what happened to the card; empty while it waits for a click."""
    who = f" (chosen by {card.chosen_by})" if card.chosen_by else ""
    lines = {
        CardState.PENDING: "",
        CardState.CATCHING_UP: f"Catching up on this thread…{who}",
        CardState.CAUGHT_UP: f"Caught up from the thread's history{who}.",
        CardState.FRESH: f"Started fresh{who}.",
    }
    return lines[card.state]


def card_text(card: CatchUpCard) -> str:
    """The card as plain text: for fallbacks, notifications and the terminal."""
    parts = [CARD_TITLE, CARD_BODY]
    if card.note:
        parts.append(card.note)
    status = card_status_line(card)
    if status:
        parts.append(status)
    return "\n".join(parts)


APPROVAL_TITLE = "Allow this tool call?"
ALLOW_LABEL = "Allow"
DENY_LABEL = "Deny"
SHOW_ALL_LABEL = "Show all"
STOP_LABEL = "Stop"
ARGUMENTS_CUT_NOTE = "Some arguments are cut short here; Show all has them in full."
DISCORD_MESSAGE_CHARS = 2000


def approval_status_line(card: ApprovalCard) -> str | None:
    """What happened to the request, once decided; None while it waits."""
    who = card.decided_by or "Someone"
    return {
        ApprovalState.PENDING: None,
        ApprovalState.APPROVED: f"Allowed by {who}.",
        ApprovalState.DENIED: f"Denied by {who}.",
        ApprovalState.TIMED_OUT: "Nobody answered in time, so the call was not made.",
        ApprovalState.EXPIRED: (
            f"{literal_name(card.decided_by)} stopped the answer, so the call was not made."  # router/stopping.py
            if card.decided_by
            else "This request expired when I restarted."
        ),
    }[card.state]


def approval_intro(card: ApprovalCard) -> str:
    return f"I want to run `{card.tool}` with:"


def approval_text(card: ApprovalCard, *, limit: int = DISCORD_MESSAGE_CHARS) -> str:
    """The approval card as at most ``limit`` characters of text: see :func:`approval_message`."""
    return approval_message(card, limit=limit)[0]


def approval_message(card: ApprovalCard, *, limit: int = DISCORD_MESSAGE_CHARS) -> tuple[str, bool]:
    """The card's text: the tool, one line per argument as a code block (``bots/tools/approval_arguments.py``), a
    note when some are cut, and the outcome if any; and whether it needs a Show all button (something is cut)."""
    head = [f"**{APPROVAL_TITLE}**", approval_intro(card)]
    tail = [line for line in (ARGUMENTS_CUT_NOTE, approval_status_line(card)) if line]
    room = limit - len("\n".join([*head, "```", "```", *tail])) - 1
    summary = argument_summary(card.arguments_json, limit=room)
    if summary.complete:
        tail.remove(ARGUMENTS_CUT_NOTE)
    return "\n".join([*head, f"```\n{summary.text}\n```", *tail]), not summary.complete


def tool_status(tool: str) -> str:
    """The progress line shown while a tool runs."""
    return f"Running {tool}…"


def split_message(text: str, *, limit: int) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` characters.

    Cuts at a paragraph break if one lies in the second half of the window, else at a line break, else at a
    space, else hard. A chunk that ends inside a ``` block is closed with a fence and the next chunk reopens
    it with the same language tag, so every chunk renders on its own.
    """
    if limit < 16:
        raise ValueError("limit too small to split sensibly")
    chunks: list[str] = []
    rest = text
    while rest:
        if len(rest) <= limit:
            chunks.append(rest)
            break
        chunk, rest = split_first(rest, limit=limit)
        if chunk.strip():
            chunks.append(chunk)
    return chunks


def split_first(text: str, *, limit: int) -> tuple[str, str]:
    """The first chunk :func:`split_message` would make of ``text``, and the rest (reopening its fence if any).

    The rest is what the next chunk starts from: a native stream (append-only) continues a reply with it.
    """
    if len(text) <= limit:
        return text, ""
    # Leave room to close a fence we may be inside of.
    window = text[: limit - len(FENCE) - 1]
    return cut_at(text, _cut_point(window))


def cut_at(text: str, cut: int) -> tuple[str, str]:
    """``text`` cut at ``cut``: a fence open at the cut is closed in the first part and reopened in the second."""
    chunk, rest = text[:cut], text[cut:]
    fence_lang = open_fence(chunk)
    if fence_lang is not None:
        return chunk.rstrip("\n") + "\n" + FENCE, FENCE + fence_lang + "\n" + rest.lstrip("\n")
    return chunk.rstrip(), rest.lstrip("\n")


def _cut_point(window: str) -> int:
    half = len(window) // 2
    for sep in ("\n\n", "\n", " "):
        at = window.rfind(sep)
        if at >= half:
            return at + len(sep)
    return len(window)


def open_fence(chunk: str) -> str | None:
    """The language tag of a ``` block left open at the end of ``chunk`` ("" if untagged), else None."""
    lang: str | None = None
    for line in chunk.split("\n"):
        stripped = line.strip()
        if stripped.startswith(FENCE):
            lang = None if lang is not None else stripped[len(FENCE) :].strip()[:MAX_FENCE_TAG]
    return lang


async def throttled_text(
    deltas: AsyncIterator[str],
    *,
    interval_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncGenerator[str, None]:
    """Accumulate text deltas and yield the whole text so far, at most once per ``interval_s``.

    The first non-empty text is yielded at once so users see the reply start; the complete text is always
    yielded last. The throttle itself is :func:`bots.replies.streaming.throttled_snapshots` (which also carries a
    status line); this is its text alone.
    """
    async with aclosing(throttled_snapshots(deltas, interval_s=interval_s, clock=clock)) as snapshots:
        async for snapshot in snapshots:
            yield snapshot.text
