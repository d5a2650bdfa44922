"""Shared benchmark plumbing: a results table, percentiles, RSS, and a router on a scratch database."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import statistics
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bots.app import open_router
from bots.config import Settings
from bots.router.threads import ThreadRouter
from tests.fakes.llm import FakeLLM
from tests.fakes.settings import fake_model_settings
from tests.fakes.waiting import FINE_POLL_S, wait_until
from tests.router_harness import PLATFORM, RecordingOutbox


@dataclass
class Result:
    id: str
    what: str
    figure: str
    baseline: str
    ratio: str
    target: str
    met: bool | None

    def row(self) -> str:
        verdict = {True: "met", False: "MISSED", None: "-"}[self.met]
        return (
            f"| {self.id} | {self.what} | {self.figure} | {self.baseline} | {self.ratio} | {self.target} | {verdict} |"
        )


TABLE_HEAD = "| id | what | figure | baseline (same run) | ratio | target | verdict |\n|---|---|---|---|---|---|---|"


ROOT = Path(__file__).resolve().parent.parent


def print_table(results: list[Result], *, markdown: str | None) -> None:
    """Print the table with a line saying when and where it was measured; optionally write it to a file."""
    import platform
    from datetime import UTC, datetime

    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    stamp = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine}"
    table = "\n".join([TABLE_HEAD, *(r.row() for r in results)])
    print(f"\n{stamp}\n{table}")
    if markdown:
        with open(markdown, "w", encoding="utf-8") as out:
            out.write(f"{stamp}\n\n{table}\n")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values)


def rss_kb() -> int:
    """Resident set size of this process, from /proc (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def settings_for(fake: FakeLLM, db: Path, **overrides: Any) -> Settings:
    return fake_model_settings(fake.base_url, db, **({"llm_context_window": 16384} | overrides))


async def until(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    """The kit's wait, polled finely so that it does not blur what a benchmark times."""
    await wait_until(predicate, timeout, what="benchmark condition", interval_s=FINE_POLL_S)


@asynccontextmanager
async def scratch_router(
    fake: FakeLLM, db: Path | None = None, **overrides: Any
) -> AsyncIterator[tuple[ThreadRouter, RecordingOutbox]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = db or Path(tmp) / "bench.db"
        async with open_router(settings_for(fake, path, **overrides)) as router:
            outbox = RecordingOutbox()
            router.register_outbox(PLATFORM, outbox)
            yield router, outbox
