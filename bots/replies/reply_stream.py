"""The one reply streamer every platform uses: what is shown when, in which messages, and after a failure.

A platform hands it a few calls (:class:`MessageCalls`: post, edit, delete, and how a snapshot becomes
messages) and the streamer owns the rest: the throttle (``bots/replies/streaming.py``), splitting at the platform's
limit without breaking a code block (the platform's ``chunks``, built on ``render.split_message``), the list of
messages posted so far, and whether a snapshot edits a message or posts a new one.

One rule for an interrupted reply, on every platform: everything received is shown, marked
as interrupted; a reply that received nothing leaves nothing behind (a placeholder or a status line goes).
Before this module the two outboxes each had a copy, and Slack showed only its last throttled snapshot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, aclosing
from typing import Protocol

from bots.replies.streaming import ReplyStatus, Snapshot, throttled_snapshots

log = logging.getLogger(__name__)

INTERRUPTED = "\n\n*(reply interrupted)*"  # markdown; each platform renders it like the reply


class MessageCalls(Protocol):
    """What a platform gives the streamer to show a reply as messages it posts and edits."""

    placeholder: str | None  # posted before the model answers (Slack's "Thinking…"), or None

    def chunks(self, snapshot: Snapshot) -> list[str]:
        """The messages ``snapshot`` needs, in the platform's markup and within its limit."""
        ...

    def waiting(self) -> AbstractAsyncContextManager[None]:
        """Held while the model has not answered yet (Discord's typing indicator)."""
        ...

    async def post(self, text: str, *, complete: bool = False) -> str:
        """Post a new message in the thread; its id. ``complete``: the last message of a completed answer."""
        ...

    async def edit(self, message_id: str, text: str, *, complete: bool = False) -> str:
        """Replace a message's text; the id to edit next time (a new one if the platform had to repost).

        ``complete``: this is the completed answer's last message in its final text (Slack adds the feedback
        buttons in the same call)."""
        ...

    async def delete(self, message_id: str) -> None:
        """Remove a message, best effort (it only held a placeholder or a status line)."""
        ...


class ReceivedText:
    """Passes the model's deltas through and keeps their sum: what an interrupted reply shows."""

    def __init__(self, deltas: AsyncIterator[str]) -> None:
        self._source = deltas
        self._parts: list[str] = []
        self.complete = False

    @property
    def text(self) -> str:
        return "".join(self._parts)

    async def deltas(self) -> AsyncIterator[str]:
        async for delta in self._source:
            self._parts.append(delta)
            yield delta
        self.complete = True


class PostedMessages:
    """The messages a reply has posted so far and the text each shows: a snapshot edits only what changed."""

    def __init__(self, calls: MessageCalls) -> None:
        self._calls = calls
        self.ids: list[str] = []
        self._shown: list[str] = []

    async def show(self, chunks: list[str], *, complete: bool = False) -> None:
        for index, chunk in enumerate(chunks):
            last = complete and index == len(chunks) - 1
            if index < len(self.ids):
                if chunk != self._shown[index]:
                    self.ids[index] = await self._calls.edit(self.ids[index], chunk, complete=last)
                    self._shown[index] = chunk
            else:
                self.ids.append(await self._calls.post(chunk, complete=last))
                self._shown.append(chunk)
        while len(self.ids) > len(chunks):  # a message that held only the status line
            self._shown.pop()
            await self._calls.delete(self.ids.pop())

    async def remove_all(self) -> None:
        while self.ids:
            self._shown.pop()
            await self._calls.delete(self.ids.pop())


async def stream_as_messages(
    calls: MessageCalls, deltas: AsyncIterator[str], *, interval_s: float, status: ReplyStatus | None = None
) -> list[str]:
    """Show a streaming reply as messages posted and edited at most once per ``interval_s``; their ids."""
    received = ReceivedText(deltas)
    snapshots = throttled_snapshots(received.deltas(), interval_s=interval_s, status=status)
    async with aclosing(snapshots):
        # Ask the model first, then show the wait: a placeholder or typing call never delays the request.
        first_text = asyncio.ensure_future(anext(snapshots, None))
        return await show_as_messages(calls, received, snapshots, first_text)


async def show_as_messages(
    calls: MessageCalls,
    received: ReceivedText,
    snapshots: AsyncIterator[Snapshot],
    first_text: asyncio.Future[Snapshot | None],
) -> list[str]:
    """The messages path of a reply whose model request is already out (``first_text``); the caller closes
    ``snapshots``. A native stream the platform refused falls back to this with what it has started."""
    messages = PostedMessages(calls)
    try:
        if calls.placeholder is not None:
            await messages.show([calls.placeholder])
        async with calls.waiting():
            snapshot = await first_text
        while snapshot is not None:
            await messages.show(calls.chunks(snapshot), complete=snapshot.complete)
            snapshot = await anext(snapshots, None)
    except BaseException:
        first_text.cancel()
        await asyncio.gather(first_text, return_exceptions=True)  # before the caller closes the stream
        await _tidy_interrupted(calls, messages, received.text)
        raise
    return messages.ids


async def _tidy_interrupted(calls: MessageCalls, messages: PostedMessages, text: str) -> None:
    try:
        if text.strip():
            await messages.show(calls.chunks(Snapshot(text.rstrip() + INTERRUPTED)))
        else:
            await messages.remove_all()
    except Exception as exc:
        log.warning("could not mark an interrupted reply: %s", exc)
