"""Fitting one turn's own entries into the window: its new messages, then its tool results step by step.

Compaction (``agent/compaction.py``) makes room by summarizing earlier turns; it cannot shorten the turn being
answered. So a turn's new messages are cut to the window first (the newest kept whole, the next older truncated,
the oldest named in one visible note), and before every model step the turn's own tool results give way,
oldest first, to a short note when together they would overflow what the request may carry.
"""

from __future__ import annotations

import logging

from agent.context import MESSAGE_OVERHEAD_TOKENS, TokenCount, truncate_to_tokens
from agent.history import HistoryEntry, Meter, rewrite, tokens_of
from agent.parts import images_within
from agent.steps import DROPPED_RESULT_NOTE

log = logging.getLogger(__name__)

OMITTED_NOTE = (
    "[{count} earlier message(s) of this turn, from {authors}, are left out: together they were too long for "
    "my context window.]"
)
MIN_TRUNCATED_TOKENS = 64


def within_budget(new: list[HistoryEntry], *, room: int, count: TokenCount) -> list[HistoryEntry]:
    """Keep a turn's new messages within ``room`` as a whole: the newest whole, the oldest cut or left out.

    The newest messages are kept as they are while they fit; the next older one is truncated into what room
    is left, and any older ones are replaced by one visible note naming how many were left out and whose.
    """
    if sum(tokens_of(e) for e in new) <= room:
        return new
    room -= count(OMITTED_NOTE.format(count=len(new), authors="x" * 60)) + MESSAGE_OVERHEAD_TOKENS
    kept: list[HistoryEntry] = []
    for index in range(len(new) - 1, -1, -1):
        entry = new[index]
        if tokens_of(entry) <= room:
            kept.insert(0, entry)
            room -= tokens_of(entry)
            continue
        if room - MESSAGE_OVERHEAD_TOKENS >= MIN_TRUNCATED_TOKENS:
            text_room = room - MESSAGE_OVERHEAD_TOKENS
            if entry.images:  # images take at most half of what is left; the rest are named in a note
                entry.images, note = images_within(entry.images, room=text_room // 2)
                entry.content += f"\n{note}" if note else ""
                text_room -= sum(image.tokens for image in entry.images)
            entry.content = truncate_to_tokens(entry.content, max_tokens=text_room, count=count)
            entry.tokens = count(entry.content) + MESSAGE_OVERHEAD_TOKENS + sum(image.tokens for image in entry.images)
            kept.insert(0, entry)
            index -= 1
        left_out = new[: index + 1]
        if left_out:
            authors = ", ".join(dict.fromkeys(" ".join(e.author.split()) or "someone" for e in left_out))
            note = OMITTED_NOTE.format(count=len(left_out), authors=authors[:60])
            tokens = count(note) + MESSAGE_OVERHEAD_TOKENS
            kept.insert(0, HistoryEntry("user", "", note, None, content=note, tokens=tokens))
        log.warning("a turn's new messages exceed the window: %d left out, %d kept", len(left_out), len(kept))
        break
    return kept


def squeeze_results(pending: list[HistoryEntry], *, fixed: int, room: int, meter: Meter) -> None:
    """When the turn's entries and ``fixed`` tokens overflow ``room``, its oldest tool results become a note."""
    for entry in pending:
        if fixed + sum(tokens_of(e) for e in pending) <= room:
            return
        if entry.result is not None and entry.text != DROPPED_RESULT_NOTE:
            rewrite(entry, text=DROPPED_RESULT_NOTE, meter=meter)
            log.warning("a tool result of this turn was dropped to fit the context window")
