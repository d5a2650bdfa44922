"""The one streaming throttle every adapter uses, and the transient status line a reply can carry.

A reply streams as snapshots: the whole text so far, plus, while a tool runs, a status line ("Running
files__read_file…") that is never part of the reply. A snapshot is shown at once when the last one is at
least ``interval_s`` old, else as soon as it is (a trailing edge: a change made while the model is silent, a
tool running, say, still reaches the thread). The final snapshot is the complete text without a status.

The model's deltas are read by one pump task into a queue that status changes join, in the order they
happen; so the throttle wakes for either, and text that arrives after a status removes it. Platforms differ
only in how a snapshot looks, never in when it is shown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from bots.seam.messages import ThreadKey


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a streaming reply should show now: its text so far, and the status line if one is set."""

    text: str
    status: str | None = None
    # The reply's whole text, the stream having ended: the last write of a completed answer. Not part of what a
    # snapshot shows, so it never makes an edit by itself.
    complete: bool = field(default=False, compare=False)

    @property
    def blank(self) -> bool:
        return not self.text.strip() and not self.status


@dataclass(frozen=True, slots=True)
class _StatusChange:
    text: str | None


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


_END = object()


class ReplyStatus:
    """The way into one streaming reply's status line: :meth:`show` queues a change behind the text so far."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[object] = asyncio.Queue()

    def show(self, text: str | None) -> None:
        self.events.put_nowait(_StatusChange(text or None))


class StreamingStatuses:
    """The replies streaming now, by thread: where ``ThreadOutbox.show_status`` finds the one to mark."""

    def __init__(self) -> None:
        self._live: dict[ThreadKey, ReplyStatus] = {}

    @contextmanager
    def streaming(self, thread: ThreadKey) -> Iterator[ReplyStatus]:
        status = ReplyStatus()
        self._live[thread] = status
        try:
            yield status
        finally:
            if self._live.get(thread) is status:
                del self._live[thread]

    def is_streaming(self, thread: ThreadKey) -> bool:
        return thread in self._live

    def show(self, thread: ThreadKey, text: str | None) -> None:
        """Mark the reply streaming in ``thread``; nothing when none is."""
        status = self._live.get(thread)
        if status is not None:
            status.show(text)


async def throttled_snapshots(
    deltas: AsyncIterator[str],
    *,
    interval_s: float,
    status: ReplyStatus | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncGenerator[Snapshot, None]:
    """Snapshots of the reply at most once per ``interval_s``; the first at once, the complete text last.

    Use it under ``contextlib.aclosing``: closing it stops reading the model (the pump task is cancelled).
    """
    events = status.events if status is not None else asyncio.Queue()
    pump = asyncio.ensure_future(_pump(deltas, events))
    text, line = "", None
    shown, last = Snapshot(""), float("-inf")
    try:
        while True:
            current = Snapshot(text, line)
            waiting = current != shown and not current.blank
            try:
                async with asyncio.timeout(max(0.0, last + interval_s - clock()) if waiting else None):
                    event = await events.get()
            except TimeoutError:
                shown, last = current, clock()
                yield current
                continue
            if event is _END:
                break
            if isinstance(event, _Failed):
                raise event.error
            if isinstance(event, _StatusChange):
                line = event.text
            elif isinstance(event, str) and event:
                text, line = text + event, None
            current, now = Snapshot(text, line), clock()
            if current != shown and not current.blank and now - last >= interval_s:
                shown, last = current, now
                yield current
        if Snapshot(text) != shown:
            yield Snapshot(text, complete=True)
    finally:
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)


async def _pump(deltas: AsyncIterator[str], events: asyncio.Queue[object]) -> None:
    try:
        async for delta in deltas:
            events.put_nowait(delta)
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # the pump itself was cancelled: the reader closed the stream
        # The turn ended itself as cancelled (the process leaving while a call waits on its card,
        # bots/tools/approval_waits.py): the reader must end the same way, not wait for a text that never comes.
        events.put_nowait(_Failed(exc))
    except Exception as exc:
        events.put_nowait(_Failed(exc))
    else:
        events.put_nowait(_END)
