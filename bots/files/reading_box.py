"""The reading box: a few worker processes that read attached files for the bot, each file on a time budget.

Why a box: pypdf and Pillow parse hostile bytes, and the work is not bounded by a file's size (a 1 KB PDF's 50
pages can share one content stream of a million operators). Read on the event loop's default executor, six
such files held every thread it has, and with them aiohttp's DNS lookups, litellm and the health checks, for
70 s. A thread cannot be stopped; a process can. So files are read here, in at most ``workers`` processes,
and a worker that takes longer than a file's budget is killed and replaced; the file is refused with a note.

Why plain subprocesses and not ``multiprocessing``: its spawn start method passes the child the bot's whole
environment (the platform and model tokens) and re-imports the main module; ``ProcessPoolExecutor`` cannot
stop one stuck task either. A worker here is ``python -I`` (no ``PYTHON*`` variables, no user site) with an
environment of its own, in its own session (a Ctrl-C at the terminal is the bot's to handle), running
``bots/files/file_reading.py``. It speaks length-prefixed frames over its stdin and stdout; nothing is pickled, so a
worker subverted by a hostile file can only send data, which the caller validates. Inside, ``RLIMIT_AS`` caps
its memory and ``RLIMIT_CPU`` ends it on its own if the bot is gone.

Workers start on the first file (the bot's start-up pays nothing) and live until :meth:`ReadingBox.close`; a
warm worker adds a few milliseconds to a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from bots.files.file_reading import FRAME, frame

log = logging.getLogger(__name__)

Parsed = TypeVar("Parsed")

WORKERS = 2
WORKER_MEMORY_BYTES = 512 * 1024 * 1024  # ~55 MB at rest; a 128 MB decoded image and its shrunk copy fit
MAX_REPLY_BYTES = 64 * 1024 * 1024  # a reply is an image under image_max_bytes or capped text: far less
CLOSE_WAIT_S = 2.0
_ROOT = str(Path(__file__).resolve().parent.parent)  # the tree this bot runs from: the worker imports the same
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from bots.files.file_reading import serve; serve()"
_ENVIRONMENT = {"LC_ALL": "C.UTF-8"}  # nothing of the bot's: no tokens, no DATABASE_URL


class OverBudget(Exception):
    """The file was not read in time: its own budget, or its message's, ran out."""


class WorkerLost(Exception):
    """The worker died or sent something that is not a reply (out of memory, a crash, a subverted parser)."""


class _Worker:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def ask(self, header: bytes, payload: bytes) -> tuple[bytes, bytes]:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(frame(header, payload))
            await stdin.drain()
            header_len, payload_len = FRAME.unpack(await stdout.readexactly(FRAME.size))
            if header_len + payload_len > MAX_REPLY_BYTES:
                raise WorkerLost(f"a reply of {header_len + payload_len} bytes")
            return await stdout.readexactly(header_len), await stdout.readexactly(payload_len)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise WorkerLost(f"the worker ended (exit status {self.process.returncode})") from exc


class ReadingBox:
    """Up to ``workers`` reading processes, started when needed; ``read`` hands one a file and waits."""

    def __init__(self, *, workers: int = WORKERS, memory_bytes: int = WORKER_MEMORY_BYTES) -> None:
        self._memory_bytes = memory_bytes
        self._slots = asyncio.Semaphore(workers)
        self._idle: list[_Worker] = []
        self._running: set[_Worker] = set()
        self._closed = False

    @property
    def busy(self) -> int:
        """How many workers are reading a file now (tests wait on it)."""
        return len(self._running) - len(self._idle)

    @property
    def worker_pids(self) -> list[int]:
        """The workers' process ids (tests look at what a worker holds)."""
        return [worker.process.pid for worker in self._running]

    async def read(
        self,
        header: bytes,
        payload: bytes,
        *,
        parse: Callable[[bytes, bytes], Parsed],
        budget_s: float,
        deadline: float,
    ) -> Parsed:
        """A worker's reply to one request, as ``parse`` reads it: within ``budget_s`` of a worker taking it, and
        before ``deadline`` (the event loop's clock) in any case, else :class:`OverBudget`. A worker over budget,
        or whose reply ``parse`` rejects (:class:`ValueError`), is killed."""
        if self._closed:
            raise WorkerLost("the reading box is closed")
        try:
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        except TimeoutError:
            raise OverBudget("no worker was free in time") from None
        try:
            worker = self._idle.pop() if self._idle else await self._start()
            try:
                async with asyncio.timeout(min(budget_s, deadline - asyncio.get_running_loop().time())):
                    reply = parse(*await worker.ask(header, payload))
            except BaseException as exc:  # over budget, dead, lying, or the turn was cancelled: not to be trusted
                await self._kill(worker)
                if isinstance(exc, TimeoutError):
                    raise OverBudget("the worker was stopped") from None
                if isinstance(exc, ValueError):
                    raise WorkerLost(f"the worker's reply was not one ({exc})") from None
                raise
            self._idle.append(worker)
            return reply
        finally:
            self._slots.release()

    async def close(self) -> None:
        """Let idle workers end (their stdin closes) and kill any still reading."""
        self._closed = True
        for worker in list(self._running):
            if worker in self._idle and worker.process.stdin is not None:
                worker.process.stdin.close()
        for worker in list(self._running):
            try:
                async with asyncio.timeout(CLOSE_WAIT_S if worker in self._idle else 0):
                    await worker.process.wait()
            except TimeoutError:
                pass
            await self._kill(worker)
        self._idle.clear()

    async def __aenter__(self) -> ReadingBox:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def _start(self) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-c",
            _BOOT,
            _ROOT,
            str(self._memory_bytes),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=_ENVIRONMENT,
            start_new_session=True,
        )
        worker = _Worker(process)
        self._running.add(worker)
        return worker

    async def _kill(self, worker: _Worker) -> None:
        self._running.discard(worker)
        with contextlib.suppress(ValueError):
            self._idle.remove(worker)
        with contextlib.suppress(ProcessLookupError):
            worker.process.kill()
        await asyncio.shield(worker.process.wait())  # a cancelled caller still leaves no zombie
