"""Writing again, from the log, the summaries that forgetting dropped.

A session may hold two summaries: the seed (the catch-up summary a restarted thread began with, covering the log
up to ``through``) and its own compaction summary (``agent/compaction.py``). A forget that touches what either
covers drops it at once; before the next request :func:`rebuild_summaries` writes it again from what the log
still shows, through a :class:`SessionSource` the router provides; a rebuilt seed is stored through it too, and
it refuses one when something was forgotten after it read the lines. When something else is forgotten meanwhile,
the summary is discarded and written again (at most ``REBUILD_TRIES`` times); a model failure leaves the turn to
go on without it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from agent.compaction import Compaction
from agent.failures import LLMError
from agent.forgetting import REBUILD_TRIES, Forgotten
from agent.summarize import Purpose, Summarizer

log = logging.getLogger(__name__)


class SessionSource(Protocol):
    """The thread's log as a session needs it to rebuild a summary it had to drop (the router provides it)."""

    async def lines_through(self, message_id: int) -> list[str]:
        """Transcript lines of the visible messages up to and including log id ``message_id``."""
        ...

    async def lines_of(self, message_ids: list[int]) -> list[str]:
        """Transcript lines of those of ``message_ids`` that are still visible, with their current text."""
        ...

    async def seed_rebuilt(self, *, summary: str | None, through: int) -> bool:
        """Store a rebuilt seed summary; False when something was forgotten since the lines were read."""
        ...


@dataclass(slots=True)
class SeedSummary:
    """The catch-up summary a session was seeded with, and the last log id it covered."""

    text: str | None = None
    through: int | None = None
    stale: bool = False  # dropped by a forget, to be rebuilt before the next request

    def forget(self, message_id: int) -> None:
        """Drop the summary when it covered ``message_id``."""
        if self.through is not None and message_id <= self.through:
            self.text = None
            self.stale = True


async def rebuild_summaries(
    seed: SeedSummary,
    compaction: Compaction,
    *,
    source: SessionSource | None,
    summarizer: Summarizer,
    forgotten: Forgotten,
) -> None:
    """Write again, from the log, any summary that a forget dropped; redo it if something else goes."""
    if source is None:
        seed.stale = compaction.stale = False
        return

    async def summarize(lines: list[str], purpose: Purpose) -> str | None:
        """A summary of ``lines`` (None for none, or when a forget interrupted it: the generation tells)."""
        if not lines:
            return None
        return await forgotten.summary_run.run(summarizer.summarize(lines=lines, purpose=purpose))

    for _ in range(REBUILD_TRIES):
        if not (seed.stale or compaction.stale):
            return
        generation = forgotten.generation
        try:
            if seed.stale and seed.through is not None:
                lines = await source.lines_through(seed.through)
                text = await summarize(lines, Purpose.CATCH_UP)
                if generation == forgotten.generation and await source.seed_rebuilt(summary=text, through=seed.through):
                    seed.text, seed.stale = text, False
            if compaction.stale:
                lines = await source.lines_of(sorted(compaction.folded))
                summary = await summarize(lines, Purpose.COMPACTION)
                if generation == forgotten.generation:
                    compaction.summary, compaction.stale = summary, False
        except LLMError as exc:
            log.warning("could not rebuild a summary after a message was forgotten (%s); going on without", exc)
            return
    if seed.stale or compaction.stale:
        log.warning("messages kept changing while a summary was rebuilt; going on without it for this turn")
