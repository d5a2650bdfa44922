"""A reply in a platform's own streaming messages (Slack's ``chat.startStream``): append-only, one rule for failure.

The platform hands :func:`stream_natively` a :class:`NativeStream` (start, append, stop, delete) and the
message calls of ``reply_stream.py`` to fall back to. The same throttle paces the appends (the first snapshot
at once, then at most one call per interval), the complete text goes out with the stop (so a reply costs one
start, one stop and an append a throttle interval), and a reply longer than a streamed message may hold
continues in a new one, cut where ``render.split_first`` would cut it (never inside a code block, which is
closed and reopened). The status line of a snapshot is handed to the platform with each append, for it to show
its own way (Slack: a task in the stream's timeline): a native stream cannot take text back.

When the stream is opened matters: the model request always goes out first. Where the stream's start is the
only sign of life (``start_at_once``) it is opened concurrently with the request; elsewhere (another
indicator shows, e.g. Slack's assistant status) when the first text or status is ready. If the platform
refuses (:class:`StreamRefused`), the reply continues as posted and edited messages, with nothing lost: the
model request already out is the same one.

Failure: everything received stays, marked interrupted, in a stopped stream; a reply that received nothing
leaves no message behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Protocol

from bots.replies.render import FENCE, cut_at, split_first
from bots.replies.reply_stream import INTERRUPTED, MessageCalls, ReceivedText, show_as_messages
from bots.replies.streaming import ReplyStatus, Snapshot, throttled_snapshots

log = logging.getLogger(__name__)


class StreamRefused(Exception):
    """The platform would not open a native stream here, now: show the reply as posted messages instead."""


class NativeStream(Protocol):
    """A platform's own streaming message: started once, appended to, stopped once."""

    limit: int  # characters a streamed message may hold (and so a call may carry)
    start_at_once: bool  # the start is the waiting indicator: open it while the model is asked

    async def start(self) -> str:
        """Open a streamed message in the thread; its id. Raises :class:`StreamRefused`."""
        ...

    async def append(self, message_id: str, text: str, *, status: str | None) -> None:
        """Append ``text`` (may be empty when only the status changed); ``status`` is the line to show now."""
        ...

    async def stop(self, message_id: str, text: str, *, complete: bool) -> None:
        """End the streamed message, appending ``text``; ``complete`` when it ends the whole, finished reply."""
        ...

    async def delete(self, message_id: str) -> None:
        """Remove a streamed message, best effort."""
        ...


class StreamedMessages:
    """The streamed messages of one reply so far, and what the current one holds."""

    def __init__(self, stream: NativeStream, first_id: str) -> None:
        self._stream = stream
        self.ids = [first_id]
        self._current = ""  # the current message's text as sent
        self._status: str | None = None  # the status line as sent
        self._done = 0  # characters of the reply that earlier (stopped) messages hold
        self._carry = ""  # a reopened code fence the next message starts with

    async def show(self, snapshot: Snapshot, *, final: bool, complete: bool = False) -> None:
        """Bring the streamed messages up to ``snapshot`` (the whole reply so far); stop the last one if ``final``."""
        text = snapshot.text
        rest = self._carry + text[self._done :]
        while len(rest) > self._stream.limit:
            head, tail = split_first(rest, limit=self._stream.limit)
            if not head.startswith(self._current):  # streamed past the tidy cut already: cut where the stream is
                head, tail = cut_at(rest, len(self._current))
            await self._stream.stop(self.ids[-1], head[len(self._current) :], complete=False)
            self._carry, self._done = _carry_and_done(text, tail)
            self.ids.append(await self._stream.start())
            self._current, self._status = "", None
            rest = self._carry + text[self._done :]
        new = rest[len(self._current) :]
        if final:
            await self._stream.stop(self.ids[-1], new, complete=complete)
        elif new or snapshot.status != self._status:
            await self._stream.append(self.ids[-1], new, status=snapshot.status)
        self._current, self._status = rest, snapshot.status

    async def remove_all(self) -> None:
        for message_id in self.ids:
            await self._stream.delete(message_id)


def _carry_and_done(text: str, tail: str) -> tuple[str, int]:
    """Where the next streamed message starts: a reopened fence line to carry, and how much of ``text`` is done.

    ``tail`` is a suffix of ``text``, perhaps behind a reopened fence line; either way carry + the rest of
    ``text`` is ``tail`` again.
    """
    if tail.startswith(FENCE) and "\n" in tail:
        fence_line, _, body = tail.partition("\n")
        return fence_line + "\n", len(text) - len(body)
    return "", len(text) - len(tail)


async def stream_natively(
    stream: NativeStream,
    fallback: MessageCalls,
    deltas: AsyncIterator[str],
    *,
    interval_s: float,
    status: ReplyStatus | None = None,
) -> list[str]:
    """Stream a reply into the platform's own streaming messages, or into posted messages if it refuses; the ids."""
    received = ReceivedText(deltas)
    snapshots = throttled_snapshots(received.deltas(), interval_s=interval_s, status=status)
    async with aclosing(snapshots):
        first_text = asyncio.ensure_future(anext(snapshots, None))  # the model request goes out first
        streamed: StreamedMessages | None = None
        try:
            if not stream.start_at_once and await first_text is None:  # a failure raises before any stream opens
                return []
            try:
                streamed = StreamedMessages(stream, await stream.start())
            except StreamRefused:
                return await show_as_messages(fallback, received, snapshots, first_text)
            snapshot = await first_text
            while snapshot is not None:
                final = received.complete and snapshot.text == received.text and snapshot.status is None
                await streamed.show(snapshot, final=final, complete=final)
                if final:
                    return streamed.ids
                snapshot = await anext(snapshots, None)
            if not received.text.strip():  # the model said nothing: no empty message stays behind
                await streamed.remove_all()
                return []
            await streamed.show(Snapshot(received.text), final=True, complete=True)
        except BaseException:
            first_text.cancel()
            await asyncio.gather(first_text, return_exceptions=True)  # before aclosing closes the stream
            if streamed is not None:
                await _tidy_interrupted(streamed, received.text)
            raise
    return streamed.ids


async def _tidy_interrupted(streamed: StreamedMessages, text: str) -> None:
    try:
        if text.strip():
            await streamed.show(Snapshot(text + INTERRUPTED), final=True)  # what was sent stays
        else:
            await streamed.remove_all()
    except Exception as exc:
        log.warning("could not mark an interrupted streamed reply: %s", exc)
