"""Group commit: concurrent writes that arrive while a batch is being written go together in the next one.

Both backends' ``ThreadLog.record_message`` use it, each with its own ``write_batch`` (one transaction per
batch). A caller returns only once its own row is committed. One bad row must not fail its neighbours: when a
batch fails, its rows are written again one by one, and only the bad one hears about the error (mapped by
``typed``, e.g. a foreign-key failure into ``ThreadGone``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from storage.records import MAX_BATCH

In = TypeVar("In")
Out = TypeVar("Out")


class GroupCommit(Generic[In, Out]):
    def __init__(
        self,
        write_batch: Callable[[list[In]], Awaitable[list[Out]]],
        *,
        typed: Callable[[BaseException], BaseException] = lambda exc: exc,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._write_batch = write_batch
        self._typed = typed
        self._max_batch = max_batch
        self._queue: list[tuple[In, asyncio.Future[Out]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: In) -> Out:
        """Queue ``item`` for the next batch and wait until it is committed."""
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            try:
                results = await self._write_batch([item for item, _ in batch])
            except Exception as exc:
                if len(batch) == 1:
                    _fail(batch[0][1], self._typed(exc))
                    continue
                for item, future in batch:
                    try:
                        _resolve(future, (await self._write_batch([item]))[0])
                    except Exception as one:
                        _fail(future, self._typed(one))
                continue
            for (_, future), result in zip(batch, results, strict=True):
                _resolve(future, result)


def _resolve(future: asyncio.Future[Out], result: Out) -> None:
    if not future.done():  # a caller cancelled meanwhile
        future.set_result(result)


def _fail(future: asyncio.Future[Out], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
