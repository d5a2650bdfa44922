"""The streaming throttle with a status line (bots/replies/streaming.py): what a reply shows, and when."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing

import pytest

from bots.replies.streaming import ReplyStatus, Snapshot, throttled_snapshots


async def test_a_status_set_while_the_model_is_silent_shows_and_the_next_text_removes_it() -> None:
    status = ReplyStatus()
    tool_done = asyncio.Event()

    async def deltas() -> AsyncIterator[str]:
        yield "Let me look."
        status.show("Running files__read_file…")  # the router, as a tool starts
        await tool_done.wait()
        yield " It says Friday."

    seen: list[Snapshot] = []
    async with aclosing(throttled_snapshots(deltas(), interval_s=0.05, status=status)) as snapshots:
        async for snapshot in snapshots:
            seen.append(snapshot)
            if snapshot.status:
                tool_done.set()
    assert seen == [
        Snapshot("Let me look."),
        Snapshot("Let me look.", "Running files__read_file…"),  # the trailing edge: no text came meanwhile
        Snapshot("Let me look. It says Friday."),
    ]


async def test_a_status_before_any_text_is_shown_alone_and_never_in_the_final_snapshot() -> None:
    status = ReplyStatus()
    status.show("Running search_thread…")

    async def deltas() -> AsyncIterator[str]:
        await asyncio.sleep(0.1)
        status.show(None)
        yield "Found it."

    seen = [s async for s in throttled_snapshots(deltas(), interval_s=0.05, status=status)]
    assert seen[0] == Snapshot("", "Running search_thread…")
    assert seen[-1] == Snapshot("Found it.")


async def test_closing_the_throttle_stops_reading_the_model_and_a_failure_reaches_the_reader() -> None:
    stopped = asyncio.Event()

    async def endless() -> AsyncIterator[str]:
        try:
            while True:
                yield "x"
                await asyncio.sleep(0.01)
        finally:
            stopped.set()

    async with aclosing(throttled_snapshots(endless(), interval_s=0.05)) as snapshots:
        assert (await anext(snapshots)).text == "x"
    assert stopped.is_set()

    async def failing() -> AsyncIterator[str]:
        yield "partial"
        raise RuntimeError("model went away")

    with pytest.raises(RuntimeError, match="model went away"):
        async with aclosing(throttled_snapshots(failing(), interval_s=0.05)) as snapshots:
            async for _ in snapshots:
                pass
