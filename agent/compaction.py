"""Compaction: when the next request would pass the window, the middle of the history becomes a summary.

The first user message (what the thread is about) and the longest run of whole recent turns that fits in half
of what a request may carry (less the turn's own new messages) stay as they are; what lies between is
summarized, together with the previous compaction summary, into a new one. A tool step and its results are one
unit: the tail never opens on a result whose call was folded away, and the last resort (dropping the oldest
entries when even that does not fit) never leaves a result without its call.

:class:`Compaction` remembers the log ids folded into the summary and the ids quoted by tool results folded with
them, so forgetting any of them drops the summary, to be rebuilt from the log (``agent/rebuild.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.context import MESSAGE_OVERHEAD_TOKENS
from agent.failures import LLMError
from agent.forgetting import REBUILD_TRIES, Forgotten
from agent.history import Conversation, HistoryEntry, tokens_of, transcript_lines
from agent.summarize import Purpose, Summarizer

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Compaction:
    """The compaction summary of a session and what it covers."""

    summary: str | None = None
    folded: set[int] = field(default_factory=set)  # log ids of the messages folded into the summary
    cites: set[int] = field(default_factory=set)  # log ids quoted by tool results folded into it
    stale: bool = False  # dropped by a forget, to be rebuilt before the next request

    @property
    def has_run(self) -> bool:
        """True once compaction has folded part of the history into a summary (or dropped it)."""
        return bool(self.folded) or self.summary is not None

    def forget(self, message_id: int) -> None:
        """Drop the summary when it saw ``message_id``."""
        if message_id in self.folded or message_id in self.cites:
            self.summary = None
            self.stale = True


async def compact_to_fit(
    conversation: Conversation,
    compaction: Compaction,
    *,
    limit: int,
    system_tokens: Callable[[], int],
    summarizer: Summarizer,
    forgotten: Forgotten,
) -> None:
    """Compact when the next request would pass ``limit`` tokens; never loop.

    When something is forgotten while the compaction summary is being written, the summary may hold it:
    it is discarded and the compaction planned again from the revised history.
    """
    for _ in range(REBUILD_TRIES):
        history = conversation.history
        new_tokens = sum(tokens_of(e) for e in conversation.pending)
        fixed = system_tokens() + new_tokens + MESSAGE_OVERHEAD_TOKENS
        if fixed + sum(tokens_of(e) for e in history) <= limit:
            return
        tail_start = _tail_start(history, room=limit // 2 - new_tokens)
        first = history[:1] if history and history[0].role == "user" else []
        middle = history[len(first) : tail_start]
        tail = history[tail_start:]
        summary = compaction.summary
        generation = forgotten.generation
        if middle:
            try:
                summary = await forgotten.summary_run.run(
                    summarizer.summarize(lines=transcript_lines(middle), purpose=Purpose.COMPACTION, previous=summary)
                )
            except LLMError as exc:
                log.warning("compaction summary failed (%s); dropping %d older messages", exc, len(middle))
        if generation != forgotten.generation:
            continue
        compaction.summary = summary
        compaction.folded.update(e.message_id for e in middle if e.message_id is not None)
        compaction.cites.update(cite for e in middle if e.result is not None for cite in e.result.cites)
        conversation.history = [*first, *tail]
        break
    fixed = system_tokens() + sum(tokens_of(e) for e in conversation.pending) + MESSAGE_OVERHEAD_TOKENS
    history = conversation.history
    if fixed + sum(tokens_of(e) for e in history) > limit:
        log.warning("cannot get the session under its token budget; continuing with the recent tail only")
        compaction.summary = None
        while history and fixed + sum(tokens_of(e) for e in history) > limit:
            history.pop(0)
            while history and history[0].role == "tool":  # never a result without its call
                history.pop(0)


def _tail_start(history: list[HistoryEntry], *, room: int) -> int:
    """Index where the longest run of whole recent turns fitting in ``room`` tokens begins."""
    start = len(history)
    used = 0
    index = len(history)
    while index > 0:
        index -= 1
        used += tokens_of(history[index])
        if used > room:
            break
        turn_begins = history[index].role == "user" and (index == 0 or history[index - 1].role != "user")
        if turn_begins:
            start = index
    if not history:
        return 0
    start = max(start, 1)
    while start < len(history) and history[start].role == "tool":
        start += 1  # a tail never opens on a result whose call was compacted
    return start
