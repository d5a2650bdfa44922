"""A session's history entries: what each one sends, what it costs in tokens, and how a turn is taken back.

Every entry is one message of the conversation (a user's, an answer, a tool step's assistant message with its
``tool_calls``, a ``tool`` result) plus what forgetting and the budget need to know about it: the log id of the
message it came from, and its measured token count. An entry is measured once, when a turn first needs it, and
measured again only after it changed (an edit, a withheld quote, a model switch): ``tokens`` None says so.

A single message bigger than half of what a request may carry is truncated visibly when it is measured, so one
message can never crowd out the rest of the conversation; images are counted by their pixel size, and those that
do not fit are named in a note instead.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from agent.context import MESSAGE_OVERHEAD_TOKENS, ContextBudget, TokenCount, truncate_to_tokens
from agent.costs import Message
from agent.parts import NO_VISION_NOTE, ImagePart, images_within, user_content
from agent.summarize import transcript_line
from agent.tools import ToolCall, ToolResult, call_line

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UserTurn:
    """One user message as the model sees it; ``message_id`` is its log id, for forgetting."""

    author: str
    text: str
    message_id: int | None = None
    images: tuple[ImagePart, ...] = ()  # attached images, sent as image parts of this user message

    def content(self) -> str:
        name = " ".join(self.author.split()) or "someone"
        return f"{name}: {self.text}"


@dataclass(slots=True)
class HistoryEntry:
    role: str  # "user", "assistant" or "tool"
    author: str
    text: str
    message_id: int | None
    content: str = ""
    tokens: int | None = None  # None: not measured since it was created or edited
    calls: list[ToolCall] = field(default_factory=list)  # an assistant step's tool calls
    result: ToolResult | None = None  # a tool entry's result (its call names the call it answers)
    images: tuple[ImagePart, ...] = ()  # a user entry's attached images

    @property
    def message(self) -> Message:
        if self.result is not None:
            return {"role": "tool", "tool_call_id": self.result.call.id, "content": self.content}
        if self.calls:
            calls = [c.for_model() for c in self.calls]
            return {"role": "assistant", "content": self.content or None, "tool_calls": calls}
        if self.images:
            return {"role": "user", "content": user_content(self.content, self.images)}
        return {"role": self.role, "content": self.content}

    def line(self) -> str:
        """The entry as a transcript line for a compaction summary."""
        return transcript_line(author=self.author, role=self.role, text=self.text)

    def measured_text(self) -> str:
        """What the entry's tokens are counted on: its content plus any calls it carries."""
        return self.content + (json.dumps([c.for_model() for c in self.calls]) if self.calls else "")


@dataclass(frozen=True, slots=True)
class Meter:
    """The window and the token counter of the turn's model: what every entry is measured against."""

    budget: ContextBudget
    count: TokenCount

    def measure(self, entry: HistoryEntry) -> None:
        """Set the entry's content and token count; a single oversized message is truncated visibly."""
        if entry.tokens is not None:
            return
        count = self.count
        cap = self.budget.input_limit // 2
        if entry.images:
            entry.images, note = images_within(entry.images, room=cap - count(entry.text) - MESSAGE_OVERHEAD_TOKENS)
            if note:
                entry.text = f"{entry.text}\n{note}"
                log.warning("images of one message exceed the context window; %s", note)
        content = UserTurn(entry.author, entry.text).content() if entry.role == "user" else entry.text
        tokens = count(content)
        if tokens > cap:
            content = truncate_to_tokens(content, max_tokens=cap, count=count)
            tokens = count(content)
        entry.content = content
        if entry.calls:
            tokens = count(entry.measured_text())
        entry.tokens = tokens + MESSAGE_OVERHEAD_TOKENS + sum(image.tokens for image in entry.images)


@dataclass(slots=True)
class Conversation:
    """A session's entries: the committed history and the running turn's own (committed only if it completes).

    Forgetting replaces either list while a turn awaits the model, so code that awaits reads them from here
    again afterwards rather than keeping a list it read before.
    """

    history: list[HistoryEntry] = field(default_factory=list)
    pending: list[HistoryEntry] = field(default_factory=list)
    heard: list[HistoryEntry] = field(default_factory=list)  # messages no turn answers, joined at the next turn
    meter: Meter | None = None  # known from the first turn on

    def all(self) -> list[HistoryEntry]:
        return [*self.history, *self.pending, *self.heard]


def rewrite(entry: HistoryEntry, *, text: str, meter: Meter | None) -> None:
    """Give the entry new text, measured again at once when the turn's meter is known (else when one starts)."""
    entry.text, entry.tokens = text, None
    if meter is not None:
        meter.measure(entry)


def tokens_of(entry: HistoryEntry) -> int:
    assert entry.tokens is not None, "entries are measured at the start of a turn"
    return entry.tokens


def without_images(entries: list[HistoryEntry]) -> None:
    """A model that cannot see (a thread switched to one, say) gets a one-line note in place of each image."""
    for entry in entries:
        if entry.images:
            notes = "\n".join(NO_VISION_NOTE for _ in entry.images)
            entry.text, entry.images, entry.tokens = f"{entry.text}\n{notes}", (), None


def bind_reply(history: list[HistoryEntry], message_id: int) -> None:
    """Give the last reply's entries (every step's text is part of it) the log id the router logged it under."""
    for entry in reversed(history):
        if entry.role == "user" or (entry.role == "assistant" and entry.message_id is not None):
            return
        if entry.role == "assistant":
            entry.message_id = message_id


def retract_last_turn(history: list[HistoryEntry]) -> tuple[int, list[int]] | None:
    """Take the last turn out of ``history``: its answer, tool steps and the messages it answered.

    Returns the answer's log id and the log ids of the messages it answered, or None (and ``history`` as it
    was) when the history does not end in a logged answer.
    """
    end = len(history)
    if not end or history[-1].role != "assistant" or history[-1].calls:
        return None
    answer_id = history[-1].message_id
    if answer_id is None:
        return None
    start = end - 1
    while start > 0 and history[start - 1].role != "user":
        start -= 1  # the turn's tool steps and results
    while start > 0 and history[start - 1].role == "user":
        start -= 1  # the messages the turn answered
    asked = [e.message_id for e in history[start:end] if e.role == "user" and e.message_id is not None]
    if not asked:
        return None
    del history[start:end]
    return answer_id, asked


def transcript_lines(entries: list[HistoryEntry]) -> list[str]:
    """Compaction transcript lines: a message per line; a tool step as its text, then a line per call."""
    results = {e.result.call.id: e.result for e in entries if e.result is not None}
    lines: list[str] = []
    for entry in entries:
        if entry.result is not None:
            continue  # told with its call
        if entry.text or not entry.calls:
            lines.append(entry.line())
        for call in entry.calls:
            result = results.get(call.id)
            text = call_line(
                name=call.name,
                raw_arguments=call.raw_arguments,
                result=result.text if result else "(no result)",
                is_error=result.is_error if result else True,
            )
            lines.append(transcript_line(author=entry.author, role="assistant", text=text))
    return lines
