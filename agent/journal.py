"""The turn journal as the agent sees it: a port it reports a tool turn's progress to, and a turn to resume.

A tool turn cut short by a restart must not run a call twice. So the session reports, as they happen, each
model step that asked for tools (:meth:`TurnJournal.step`, before any of its calls runs; the router may write it
with the first call's ``running``) and each call about to
be sent to its server (:meth:`TurnJournal.running`, which returns only once that is recorded: when it fails, the
call is not run); the end of every call reaches the turn's ``on_result`` hook as before. The router writes all of
it to the thread's log (``bots/tools/journal.py``); ``agent/`` knows nothing of storage.

Resuming: the router reads the interrupted turn back and hands the session its steps as :class:`ResumedStep`
values. A call with a result is replayed from it, never run again; a call without one (it had not started, or
it was a read-only call that was running) is run now. A side-effecting call that was running when the process
died is given, by the router, a result saying its outcome is unknown (:data:`OUTCOME_UNKNOWN_NOTE`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from agent.tools import ToolCall, ToolResult

OUTCOME_UNKNOWN_NOTE = (
    "The call to {name} was interrupted by a restart while it was running: it may or may not have taken effect, "
    "and its result is lost. It was not run again. Check before you run it again, or tell the user."
)


class TurnJournal(Protocol):
    """Where a tool turn's steps and calls are recorded as they happen (the router writes them to the log)."""

    async def step(self, *, text: str, calls: Sequence[ToolCall]) -> None:
        """A model step asked for ``calls`` after saying ``text``; recorded before any of them runs."""
        ...

    async def running(self, call: ToolCall) -> None:
        """``call`` is about to be sent to its provider; returns once that is recorded, raises when it cannot be."""
        ...


@dataclass(frozen=True, slots=True)
class ResumedStep:
    """A step of an interrupted turn: its text, its calls, and the result of each (None: run it now)."""

    text: str
    calls: tuple[ToolCall, ...]
    results: tuple[ToolResult | None, ...]


__all__ = ["OUTCOME_UNKNOWN_NOTE", "ResumedStep", "TurnJournal"]
