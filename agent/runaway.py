"""Stopping an answer that runs away: one that repeats itself, or one that hits its token limit.

A small model can fall into a loop and stream the same paragraph until its context runs out. Two guards stop it.
The request's ``max_tokens`` (``LLM_MAX_OUTPUT_TOKENS``, within the budget's room: ``agent/context.py``) bounds
every answer; when the model stops for that reason (finish reason ``length``) the answer ends with a short note
saying so. And :class:`RepetitionWatch` cuts an answer as soon as it loops, which usually comes much sooner.

What counts as a loop, precisely: the answer's last ``L`` characters are one span of ``p`` characters repeated
back to back (the tail has period ``p``), with ``1 <= p <= MAX_SPAN``, at least ``MIN_REPEATS`` copies
(``L >= MIN_REPEATS * p``) and ``L >= MIN_LOOP_CHARS`` altogether. Legitimate repetitive text does not match:
the rows of a table and the items of a numbered list differ somewhere in every copy, and a few identical code
lines stay far below ``MIN_LOOP_CHARS``; a model that writes a 200-character paragraph seven times does.

It is cheap per delta: only the last ``WINDOW`` characters are kept, a check runs every ``CHECK_EVERY`` new
characters, and a check finds candidate periods with ``str.rfind`` of the tail's last ``NEEDLE`` characters
(a period ``p`` means they also occur ``p`` characters earlier) and verifies each with one slice comparison:
bounded C-level work per check, linear in the answer overall.
"""

from __future__ import annotations

MIN_REPEATS = 3
MIN_LOOP_CHARS = 1200
MAX_SPAN = 1000
NEEDLE = 32
CHECK_EVERY = 64
MAX_CANDIDATES = 16
WINDOW = max(MIN_REPEATS * MAX_SPAN, MIN_LOOP_CHARS) + NEEDLE

LOOP_NOTE = "(I stopped this answer because it was repeating itself.)"
LENGTH_NOTE = (
    "(I stopped here: this answer reached its length limit of {tokens:,} tokens. Ask me to continue if you want more.)"
)


class RepetitionWatch:
    """Fed an answer's deltas in order; says when the answer has started to loop (see the module docstring)."""

    def __init__(self) -> None:
        self._tail = ""
        self._unchecked = 0

    def loops(self, delta: str) -> bool:
        """Add ``delta``; True when the answer now ends in a loop."""
        self._tail += delta
        if len(self._tail) > 2 * WINDOW:
            self._tail = self._tail[-WINDOW:]
        self._unchecked += len(delta)
        if self._unchecked < CHECK_EVERY:
            return False
        self._unchecked = 0
        return looping_period(self._tail) is not None


def looping_period(text: str) -> int | None:
    """The length of the span ``text`` ends by repeating (a loop, as the module docstring defines it), or None."""
    if len(text) < MIN_LOOP_CHARS + NEEDLE:
        return None
    end = len(text)
    needle = text[end - NEEDLE :]
    lowest = max(0, end - NEEDLE - MAX_SPAN)
    before = end - 1  # occurrences must end before the needle itself does
    for _ in range(MAX_CANDIDATES):
        found = text.rfind(needle, lowest, before)
        if found < 0:
            return None
        period = end - NEEDLE - found
        stretch = max(MIN_REPEATS * period, MIN_LOOP_CHARS)
        if stretch <= end and text[end - stretch + period :] == text[end - stretch : end - period]:
            return period
        before = found + NEEDLE - 1
    return None
