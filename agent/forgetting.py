"""What a session was told to forget, and what that does to its history at once.

When a logged message is deleted or edited, the router calls ``AgentSession.forget``, which records it here
(:meth:`Forgotten.record`). The change applies at once, even while a turn is running: the message's entry is
dropped or rewritten (:meth:`Forgotten.revised`, also applied to a turn's new messages before it starts), a tool
result that quoted it keeps its place but not the quote (:func:`withhold_quotes`), and a summary being written
is interrupted. The ``generation`` counts the changes, so a summary that was being written when one arrived is
known to be stale and is written again (at most ``REBUILD_TRIES`` times).

The record keeps the newest ``REMEMBERED_CHANGES`` changes, so a long-lived session's memory stays bounded.
"""

from __future__ import annotations

from collections import OrderedDict

from agent.history import HistoryEntry, Meter, rewrite
from agent.steps import FORGOTTEN_QUOTE_NOTE
from agent.summarize import Interruptible

REBUILD_TRIES = 3
REMEMBERED_CHANGES = 10_000


class Forgotten:
    """The log ids forgotten lately (with the new text of an edit, None for a delete), and a change counter."""

    def __init__(self) -> None:
        self.changes: OrderedDict[int, str | None] = OrderedDict()
        self.generation = 0
        self.summary_run = Interruptible()  # the summary being written now, stopped by any change

    def record(self, message_id: int, new_text: str | None) -> None:
        """Remember the change, count it, and stop the summary being written (it may hold the old text)."""
        self.generation += 1
        self.summary_run.interrupt()
        self.changes[message_id] = new_text
        self.changes.move_to_end(message_id)
        while len(self.changes) > REMEMBERED_CHANGES:
            self.changes.popitem(last=False)

    def revised(self, entries: list[HistoryEntry], *, meter: Meter | None) -> list[HistoryEntry]:
        """``entries`` without deleted messages, edited ones with their new text (a tool step keeps its calls)."""
        kept: list[HistoryEntry] = []
        for entry in entries:
            if entry.message_id is None or entry.message_id not in self.changes:
                kept.append(entry)
                continue
            new_text = self.changes[entry.message_id]
            if entry.calls:  # a step of a forgotten reply: its text goes, its calls stay paired with results
                if entry.text:
                    rewrite(entry, text="", meter=meter)
                kept.append(entry)
            elif new_text is not None and new_text != entry.text:
                rewrite(entry, text=new_text, meter=meter)
                kept.append(entry)
            elif new_text is not None:
                kept.append(entry)
        return kept


def withhold_quotes(entries: list[HistoryEntry], message_id: int, *, meter: Meter | None) -> None:
    """Tool results that quoted ``message_id`` (search_thread's) keep their place but not the quote."""
    for entry in entries:
        if entry.result is not None and message_id in entry.result.cites and entry.text != FORGOTTEN_QUOTE_NOTE:
            rewrite(entry, text=FORGOTTEN_QUOTE_NOTE, meter=meter)
