"""P5: resident memory per live idle session, and RSS staying flat under MAX_LIVE_SESSIONS.

Sessions are built the way users build them: real turns through the router, litellm and the fake model over
HTTP (about 10 ms of litellm per request here, which is why the sample is 500 sessions of 10 turns rather than
10,000). The per-session figure is (RSS with the sessions - RSS before them) / sessions, with the process
warmed up first (litellm imported, one thread answered). The cap run grows threads well past
MAX_LIVE_SESSIONS and samples RSS as it goes.
"""

from __future__ import annotations

import asyncio
import gc
import os

from agent.llm import litellm_module
from bench.common import Result, rss_kb, scratch_router
from bots.seam.messages import Author, IncomingMessage, ThreadKey
from tests.fakes.llm import FakeLLM

SESSIONS = int(os.environ.get("BENCH_P5_SESSIONS", "500"))
TURNS = 10
CAP = 200
AUTHOR = Author("U1", "Alice")


async def _turns(router: object, key: ThreadKey, count: int, start: int = 0) -> None:
    for turn in range(start, start + count):
        await router.handle_message(  # type: ignore[attr-defined]
            IncomingMessage(key, f"{key.thread}-{turn}", AUTHOR, f"Short question number {turn} about the plan?")
        )
        await router.idle()  # type: ignore[attr-defined]


async def _grow(router: object, prefix: str, first: int, last: int, turns: int) -> None:
    semaphore = asyncio.Semaphore(50)

    async def one(i: int) -> None:
        async with semaphore:
            await _turns(router, ThreadKey("test", "bench", "c", f"{prefix}{i}"), turns)

    await asyncio.gather(*(one(i) for i in range(first, last)))


async def run() -> list[Result]:
    await litellm_module()
    async with FakeLLM(keep_requests=False) as fake:
        fake.reply_with(lambda body: "A short answer of about the usual length for a chat reply.")
        async with scratch_router(fake, max_live_sessions=SESSIONS + 100) as (router, _):
            await _grow(router, "warm", 0, 20, 2)
            gc.collect()
            before = rss_kb()
            await _grow(router, "s", 0, SESSIONS, TURNS)
            gc.collect()
            after = rss_kb()
            live = router.live_sessions
        per_session = (after - before) / SESSIONS
        async with scratch_router(fake, max_live_sessions=CAP) as (router, _):
            samples = []
            for step in range(1, 6):
                await _grow(router, "cap", (step - 1) * CAP, step * CAP, 2)
                gc.collect()
                samples.append(rss_kb())
            capped = router.live_sessions
    growth = samples[-1] - samples[1]
    return [
        Result(
            "P5",
            f"RSS per live idle session ({SESSIONS} sessions x {TURNS} turns, {live - 20} live)",
            f"{per_session:.1f} KB",
            f"RSS before sessions {before / 1024:.0f} MB",
            "-",
            "<= 30 KB",
            per_session <= 30,
        ),
        Result(
            "P5b",
            f"RSS as threads grow 200 -> 1,000 with MAX_LIVE_SESSIONS={CAP} ({capped} live at the end)",
            " / ".join(f"{s / 1024:.0f}" for s in samples) + " MB",
            f"{samples[1] / 1024:.0f} MB at 400 threads",
            f"+{growth / 1024:.1f} MB 400->1,000",
            "flat",
            growth < 0.1 * samples[1],
        ),
    ]


if __name__ == "__main__":
    for result in asyncio.run(run()):
        print(result.row())
