"""Token budget arithmetic: how much fits in the model's window, and how to cut what does not.

The window is the model's max input tokens (litellm's model map, else ``LLM_CONTEXT_WINDOW``). Requests are
kept under 90% of it, with room left for the answer, so the count litellm makes and the count a provider makes
may differ a little without a request ever being refused. The room left for the answer is also the most the
model may write (the request's ``max_tokens``): ``LLM_MAX_OUTPUT_TOKENS``, but never more than a quarter of the
window, so on a small window the conversation keeps room and a model sharing its context with its answer (a
local model) cannot run out of it mid-answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

TokenCount = Callable[[str], int]

COMPACT_AT = 0.9
SUMMARY_MAX_TOKENS = 1024  # summaries are asked to be short; answers have LLM_MAX_OUTPUT_TOKENS
MESSAGE_OVERHEAD_TOKENS = 4
ESTIMATE_MARGIN = 1.05
TRUNCATION_MARKER = "\n[… truncated: {omitted} characters omitted …]\n"


@dataclass(frozen=True, slots=True)
class ContextBudget:
    """The numbers every request is planned against."""

    window: int
    max_output: int = SUMMARY_MAX_TOKENS

    @property
    def output_tokens(self) -> int:
        """Room kept for the model's answer, and its ``max_tokens``: ``max_output`` within a quarter of the window."""
        return max(32, min(self.max_output, self.window // 4))

    @property
    def input_limit(self) -> int:
        """The most tokens a request may carry: 90% of the window less the answer's room."""
        return max(64, int(self.window * COMPACT_AT) - self.output_tokens)


def truncate_to_tokens(text: str, *, max_tokens: int, count: TokenCount) -> str:
    """``text`` if it fits, else its head and tail around a visible marker, within ``max_tokens``."""
    tokens = count(text)
    if tokens <= max_tokens:
        return text
    keep = int(len(text) * max_tokens / tokens)
    while keep > 0:
        keep = int(keep * 0.9)
        head, tail = text[: keep * 3 // 4], text[len(text) - keep // 4 :] if keep // 4 else ""
        candidate = head + TRUNCATION_MARKER.format(omitted=len(text) - len(head) - len(tail)) + tail
        if count(candidate) <= max_tokens:
            return candidate
    return TRUNCATION_MARKER.format(omitted=len(text)).strip()


def pack_into_chunks(lines: list[str], *, budget: int, count: TokenCount) -> list[list[str]]:
    """Pack lines, in order, into chunks whose token count stays within ``budget``.

    Counting every line separately costs about 50 µs a line in litellm, which for a 10,000-message thread
    would hold the event loop for half a second. So the transcript's tokens-per-character ratio is measured on
    a sample, lines are packed by that estimate (with a margin), and each packed chunk is verified with one
    real count; a chunk that does not fit is halved until it does. A line bigger than the budget on its own
    is truncated with a visible marker.
    """
    ratio = _tokens_per_char(lines, count=count)
    chunks: list[list[str]] = []
    for rough in _pack_by_estimate(lines, budget=budget, ratio=ratio):
        chunks.extend(_verified(rough, budget=budget, count=count))
    return chunks


def _tokens_per_char(lines: list[str], *, count: TokenCount) -> float:
    sample = "\n".join(lines[:: max(1, len(lines) // 200)])[:200_000]
    if not sample:
        return 0.5
    return max(0.05, count(sample) / len(sample)) * ESTIMATE_MARGIN


def _pack_by_estimate(lines: list[str], *, budget: int, ratio: float) -> list[list[str]]:
    packed: list[list[str]] = []
    current: list[str] = []
    used = 0.0
    for line in lines:
        tokens = len(line) * ratio + 2
        if current and used + tokens > budget:
            packed.append(current)
            current, used = [], 0.0
        current.append(line)
        used += tokens
    if current:
        packed.append(current)
    return packed


def _verified(chunk: list[str], *, budget: int, count: TokenCount) -> list[list[str]]:
    if count("\n".join(chunk)) + len(chunk) <= budget:
        return [chunk]
    if len(chunk) == 1:
        return [[truncate_to_tokens(chunk[0], max_tokens=budget - 1, count=count)]]
    middle = len(chunk) // 2
    return [
        *_verified(chunk[:middle], budget=budget, count=count),
        *_verified(chunk[middle:], budget=budget, count=count),
    ]
