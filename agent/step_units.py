"""A tool step joins the turn as one unit: the assistant message that asked for calls, then their results.

Split out of ``agent/session.py``, which had grown past the size a module should have, because it is one job
with rules of its own. The step is reported to the turn journal before any of its calls runs, the calls run
through ``agent/steps.py``, a result that quotes a message forgotten meanwhile is withheld, and the step and its
results go into the turn's pending entries together, in call order, so no request ever carries a result without
its call. A step resumed after a restart (:class:`~agent.journal.ResumedStep`) goes in the same way: the calls that
ended are replayed from their results, never run again, and only those that had not ended run now.

The session's entries and what it was told to forget are read from their objects after every await (forgetting
replaces the lists while a call runs), never kept from before.
"""

from __future__ import annotations

import logging

from agent.forgetting import Forgotten
from agent.history import Conversation, HistoryEntry
from agent.journal import ResumedStep, TurnJournal
from agent.llm import RequestedCall
from agent.steps import RepeatGuard, ResultHook, calls_of, run_calls, withheld_if_forgotten
from agent.tools import Approver, ToolBox, ToolCall, ToolResult

log = logging.getLogger(__name__)

__all__ = ["resume_step", "run_step"]


async def run_step(
    entries: Conversation,
    forgotten: Forgotten,
    text: str,
    requested: list[RequestedCall],
    tools: ToolBox,
    *,
    author: str,
    approve: Approver | None,
    on_result: ResultHook | None,
    guard: RepeatGuard | None = None,
    journal: TurnJournal | None = None,
) -> None:
    """Run a step's calls; append the step and its results, in call order, as one unit."""
    meter = entries.meter
    assert meter is not None
    calls = calls_of(requested)
    if journal is not None:
        try:
            await journal.step(text=text.strip(), calls=calls)
        except Exception:  # its calls are not run: their ``running`` cannot be recorded either
            log.exception("could not record a tool step in the turn journal")
    changes = forgotten.changes
    results = await run_calls(
        calls,
        tools,
        approve=approve,
        on_result=on_result,
        count=meter.count,
        forgotten=changes,
        guard=guard,
        on_start=journal.running if journal is not None else None,
    )
    _append_step(entries, forgotten, text, calls, results, author=author)


async def resume_step(
    entries: Conversation,
    forgotten: Forgotten,
    step: ResumedStep,
    tools: ToolBox | None,
    *,
    author: str,
    approve: Approver | None,
    on_result: ResultHook | None,
    journal: TurnJournal | None,
) -> None:
    """An interrupted step: replay the calls that ended, run those that had not (never a call that ran)."""
    meter = entries.meter
    assert meter is not None
    unfinished = [call for call, result in zip(step.calls, step.results, strict=True) if result is None]
    if unfinished and tools is not None:
        ran = await run_calls(
            unfinished,
            tools,
            approve=approve,
            on_result=on_result,
            count=meter.count,
            forgotten=forgotten.changes,
            on_start=journal.running if journal is not None else None,
        )
    else:
        ran = [ToolResult(c, f"Error: {c.name} is not available now; it did not run.", True, 0) for c in unfinished]
    by_id = {r.call.id: r for r in ran}
    results = [r if r is not None else by_id[c.id] for c, r in zip(step.calls, step.results, strict=True)]
    _append_step(entries, forgotten, step.text, list(step.calls), results, author=author)


def _append_step(
    entries: Conversation,
    forgotten: Forgotten,
    text: str,
    calls: list[ToolCall],
    results: list[ToolResult],
    *,
    author: str,
) -> None:
    """Append a step and its results, in call order, as one unit."""
    meter = entries.meter
    assert meter is not None
    changes = forgotten.changes
    results = [withheld_if_forgotten(r, changes) for r in results]  # forgotten after on_result
    step = [
        HistoryEntry("assistant", author, text.strip(), None, calls=calls),
        *(HistoryEntry("tool", r.call.name, r.text, None, result=r) for r in results),
    ]
    for entry in step:
        meter.measure(entry)
    entries.pending.extend(step)
