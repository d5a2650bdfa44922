"""Shared benchmark plumbing: a results table, percentiles, RSS, and a router on a scratch database."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import statistics
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bots.app import open_router
from bots.config import Settings
from bots.threads import ThreadRouter
from tests.fakes.llm import FakeLLM
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
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{db}",
        "llm_model": "openai/fake",
        "llm_api_base": fake.base_url,
        "llm_api_key": "sk-bench",
        "llm_context_window": 16384,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


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
