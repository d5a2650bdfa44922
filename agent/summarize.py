"""Summaries of a transcript, shared by compaction and catch-up, that never overflow the window.

Two prompts: compaction keeps a running session small (concise; decisions and why), catch-up writes a note to
the bot's future self after a restart (what was asked and answered, decisions, open questions, who said what).

A transcript larger than one request is packed into chunks that each fit, the chunks are summarized
concurrently (bounded by a semaphore), and the partial summaries are combined the same way, level by level,
until one remains. Every request is planned against :class:`ContextBudget`, so none exceeds the window. An empty
summary is an error, never a silent success.
"""

from __future__ import annotations

import asyncio
import enum
import logging

from agent.context import ContextBudget, TokenCount, pack_into_chunks, truncate_to_tokens
from agent.llm import FailureKind, LLMClient, LLMError, Message

log = logging.getLogger(__name__)


class Purpose(enum.Enum):
    COMPACTION = "compaction"
    CATCH_UP = "catch_up"


PROMPTS: dict[Purpose, str] = {
    Purpose.COMPACTION: (
        "You compress the middle of a long chat so the conversation can continue within its context window. "
        "Write a concise summary of the transcript: the facts established, the decisions made and why, "
        "and anything still unresolved. Keep names, numbers, code identifiers and links exact. "
        "Write plain prose or short bullet points; no preamble."
    ),
    Purpose.CATCH_UP: (
        "You are writing a note to your future self. You are a chat assistant in a team thread; you restarted "
        "and lost your memory of this thread. From the transcript, write what you need to pick the conversation "
        "up again: what was asked and what was answered, decisions and their reasons, open questions and "
        "pending tasks, and who said what (use people's names). Keep names, numbers, code identifiers and links "
        "exact. Be concise; no preamble."
    ),
}

COMBINE_NOTE = (
    " The transcript below consists of summaries of consecutive parts of one conversation, in order; "
    "merge them into one."
)
PART_NOTE = " The transcript below is part {index} of {total} of the conversation."
PREVIOUS_LABEL = "[Summary of the conversation before this point]"
MAX_LEVELS = 6
# Bounded, but enough to summarize a 10,000-message thread in a 16k window in one round of requests.
SUMMARY_CONCURRENCY = 32


class Summarizer:
    """Summarizes transcript lines with an :class:`LLMClient`, chunking as the window requires."""

    def __init__(self, llm: LLMClient, *, max_concurrency: int = SUMMARY_CONCURRENCY) -> None:
        self._llm = llm
        self._semaphore = asyncio.Semaphore(max_concurrency)

    async def summarize(self, *, lines: list[str], purpose: Purpose, previous: str | None = None) -> str:
        """One summary of ``lines`` (oldest first), continuing ``previous`` when given."""
        budget = ContextBudget(window=await self._llm.max_input_tokens())
        count = await self._llm.text_counter()
        if previous:
            lines = [f"{PREVIOUS_LABEL}\n{previous}", *lines]
        if not lines:
            raise LLMError(
                "nothing to summarize",
                kind=FailureKind.EMPTY,
                user_message="There is nothing in this thread to catch up on.",
            )
        note = ""
        for _level in range(MAX_LEVELS):
            room = budget.input_limit - count(PROMPTS[purpose] + COMBINE_NOTE + PART_NOTE) - 24
            chunks = pack_into_chunks(lines, budget=room, count=count)
            if len(chunks) == 1:
                return await self._one(chunks[0], purpose=purpose, note=note, budget=budget)
            log.info("summarizing %d lines in %d chunks", len(lines), len(chunks))
            parts = await asyncio.gather(
                *(
                    self._one(chunk, purpose=purpose, note=PART_NOTE.format(index=i, total=len(chunks)), budget=budget)
                    for i, chunk in enumerate(chunks, start=1)
                )
            )
            lines = [f"[Part {i}]\n{part}" for i, part in enumerate(parts, start=1)]
            note = COMBINE_NOTE
        # The partial summaries refuse to shrink: keep what fits rather than loop.
        log.warning("summary did not converge in %d levels; truncating", MAX_LEVELS)
        return truncate_to_tokens("\n\n".join(lines), max_tokens=budget.input_limit, count=count)

    async def _one(self, lines: list[str], *, purpose: Purpose, note: str, budget: ContextBudget) -> str:
        transcript = "\n".join(lines)
        messages: list[Message] = [
            {"role": "system", "content": PROMPTS[purpose] + note},
            {"role": "user", "content": f"<transcript>\n{transcript}\n</transcript>"},
        ]
        async with self._semaphore:
            text = (await self._llm.complete(messages, max_tokens=budget.output_tokens)).strip()
        if not text:
            raise LLMError(
                "the model returned an empty summary",
                kind=FailureKind.EMPTY,
                user_message="The model gave me an empty summary. Try again, or start fresh.",
            )
        return text


def transcript_line(*, author: str, role: str, text: str) -> str:
    """One message as a transcript line; the bot's own messages are labelled as such."""
    who = f"{author} (assistant)" if role == "assistant" else author
    return f"{who}: {text}"


__all__ = ["Purpose", "Summarizer", "TokenCount", "transcript_line"]
