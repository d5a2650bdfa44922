"""Token budget arithmetic: how much fits in the model's window, and how to cut what does not.

The window is the model's max input tokens (litellm's model map, else ``LLM_CONTEXT_WINDOW``). Requests are
kept under 90% of it, with room left for the answer, so the count litellm makes and the count a provider makes
may differ a little without a request ever being refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

TokenCount = Callable[[str], int]

COMPACT_AT = 0.9
MESSAGE_OVERHEAD_TOKENS = 4
TRUNCATION_MARKER = "\n[… truncated: {omitted} characters omitted …]\n"


@dataclass(frozen=True, slots=True)
class ContextBudget:
    """The numbers every request is planned against."""

    window: int

    @property
    def output_tokens(self) -> int:
        """Room kept for the model's answer."""
        return max(32, min(1024, self.window // 8))

    @property
    def input_limit(self) -> int:
        """The most tokens a request may carry: 90% of the window less the answer's room."""
        return max(64, int(self.window * COMPACT_AT) - self.output_tokens)


def truncate_to_tokens(text: str, *, max_tokens: int, count: TokenCount) -> str:
    """``text`` if it fits, else its head and tail around a visible marker, within ``max_tokens``."""
    if count(text) <= max_tokens:
        return text
    keep = len(text)
    while keep > 0:
        keep = int(keep * 0.8)
        head, tail = text[: keep * 3 // 4], text[len(text) - keep // 4 :] if keep // 4 else ""
        candidate = head + TRUNCATION_MARKER.format(omitted=len(text) - len(head) - len(tail)) + tail
        if count(candidate) <= max_tokens:
            return candidate
    return TRUNCATION_MARKER.format(omitted=len(text)).strip()


def pack_into_chunks(lines: list[str], *, budget: int, count: TokenCount) -> list[list[str]]:
    """Greedily pack lines into chunks whose token total stays within ``budget``.

    A line bigger than the budget on its own is truncated with a marker, so every chunk fits.
    """
    chunks: list[list[str]] = []
    current: list[str] = []
    used = 0
    for line in lines:
        tokens = count(line) + 1
        if tokens > budget:
            line = truncate_to_tokens(line, max_tokens=budget - 1, count=count)
            tokens = count(line) + 1
        if current and used + tokens > budget:
            chunks.append(current)
            current, used = [], 0
        current.append(line)
        used += tokens
    if current:
        chunks.append(current)
    return chunks
