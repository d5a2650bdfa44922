"""Several `threadkeeper run` processes on one throwaway Postgres, each killable, stoppable and restartable.

The drills R6 and R7 and the benchmark P8 start workers through :class:`WorkerPool`: every worker is a child
process with the same settings (``tests/fakes/process.py`` gives it a clean environment) and a log file of its
own, whose ``adapter ready`` lines say when it is serving. Each worker talks to the model with a key of its own
(``sk-drill-w<slot>``), so the fake model's request log says which worker asked.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakes.postgres import PostgresServer, running_server
from tests.fakes.process import child_process

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 40.0


def worker_key(slot: int) -> str:
    return f"sk-drill-w{slot}"


@dataclass
class Worker:
    slot: int
    log: Path
    process: asyncio.subprocess.Process | None = None
    stack: AsyncExitStack | None = None
    starts: int = 0
    exit_codes: list[int] = field(default_factory=list)

    def ready_lines(self) -> int:
        try:
            return self.log.read_text(errors="replace").count("adapter ready")
        except FileNotFoundError:
            return 0


class WorkerPool:
    """``size`` workers with one environment; see the module docstring."""

    def __init__(self, *, env: dict[str, str], size: int, folder: Path, platforms: int = 1) -> None:
        self._env = env
        self._platforms = platforms  # "adapter ready" lines per start
        self.workers = [Worker(slot, folder / f"worker-{slot}.log") for slot in range(size)]

    async def start(self, slot: int, *, wait_ready: bool = True) -> None:
        worker = self.workers[slot]
        before = worker.ready_lines()
        worker.stack = AsyncExitStack()
        env = self._env | {"LLM_API_KEY": worker_key(slot)}
        worker.process = await worker.stack.enter_async_context(
            child_process(["-m", "bots", "run"], env, log=worker.log)
        )
        worker.starts += 1
        if wait_ready:
            await self.wait_ready(slot, before=before)

    async def wait_ready(self, slot: int, *, before: int) -> None:
        worker = self.workers[slot]
        deadline = time.monotonic() + READY_TIMEOUT_S
        while worker.ready_lines() < before + self._platforms:
            if worker.process is not None and worker.process.returncode is not None:
                raise RuntimeError(f"worker {slot} exited with {worker.process.returncode}; see {worker.log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker {slot} not ready within {READY_TIMEOUT_S:.0f} s; see {worker.log}")
            await asyncio.sleep(0.05)

    async def kill(self, slot: int) -> None:
        """SIGKILL: no hand-back, no goodbye; its leases expire."""
        await self._end(slot, signal.SIGKILL)

    async def stop(self, slot: int) -> int:
        """SIGTERM, as a deploy does; returns the exit code."""
        return await self._end(slot, signal.SIGTERM)

    async def _end(self, slot: int, sig: signal.Signals) -> int:
        worker = self.workers[slot]
        assert worker.process is not None and worker.stack is not None
        if worker.process.returncode is None:
            worker.process.send_signal(sig)
        code = await asyncio.wait_for(worker.process.wait(), STOP_TIMEOUT_S)
        await worker.stack.aclose()
        worker.process, worker.stack = None, None
        worker.exit_codes.append(code)
        return code

    def running(self) -> list[int]:
        return [w.slot for w in self.workers if w.process is not None and w.process.returncode is None]

    async def stop_all(self) -> list[int]:
        return list(await asyncio.gather(*(self.stop(slot) for slot in self.running())))

    def logs(self) -> str:
        """Every worker's log; also copied to BENCH_KEEP_LOGS (a folder) when set, to read after the run."""
        keep = os.environ.get("BENCH_KEEP_LOGS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            for w in self.workers:
                if w.log.exists():
                    shutil.copy(w.log, Path(keep) / w.log.name)
        return "".join(w.log.read_text(errors="replace") for w in self.workers if w.log.exists())

    @asynccontextmanager
    async def running_all(self) -> AsyncIterator[WorkerPool]:
        """Every worker started (one after the other, so they do not fight over the cores), stopped on exit."""
        try:
            for slot in range(len(self.workers)):
                await self.start(slot)
            yield self
        finally:
            for slot in self.running():
                worker = self.workers[slot]
                assert worker.process is not None
                worker.process.kill()
                await self._end(slot, signal.SIGKILL)


@contextmanager
def postgres_database(*, durable: bool = False) -> Iterator[tuple[PostgresServer, str]]:
    """A throwaway server (or THREADKEEPER_TEST_POSTGRES_URL's) and a fresh database on it."""
    with running_server(durable=durable) as server:
        url = server.create_database()
        try:
            yield server, url
        finally:
            server.drop_database(url)
