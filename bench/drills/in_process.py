"""R2 and R3: card races and model faults, driven in one process against the fakes (R4 is in bad_input.py, R5
in security.py; they share ``router_on``).

Each drill repeats its scenario many times and counts outcomes; the router runs on a real SQLite file and
real litellm over HTTP.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bench.common import Result, settings_for
from bots.app import open_router
from bots.seam.messages import CardAction, CardClick
from tests.fakes.llm import FakeLLM
from tests.router_harness import ALICE, BOB, PLATFORM, Bot, RecordingOutbox, thread_key

TRIALS = int(os.environ.get("BENCH_R2_TRIALS", "20"))


@asynccontextmanager
async def router_on(llm: FakeLLM, db: Path, **overrides: Any) -> AsyncIterator[Bot]:
    async with open_router(settings_for(llm, db, **overrides)) as router:
        outbox = RecordingOutbox()
        router.register_outbox(PLATFORM, outbox)
        yield Bot(router, outbox)
        await router.idle()


async def orphaned_card(llm: FakeLLM, db: Path) -> int:
    """A thread with history, a restart, and a message that got a card; return the card id."""
    async with router_on(llm, db) as bot:
        await bot.say("earlier context")
    async with router_on(llm, db) as bot:
        await bot.say("where were we?")
        return bot.outbox.cards_posted[0].card_id


# -- R2 ------------------------------------------------------------------------------------------------------


async def r2_clicks(llm: FakeLLM) -> Result:
    outcomes = {"trials": 0, "one outcome": 0, "answers": 0, "losers told": 0}
    for trial in range(TRIALS):
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "r2.db"
            card_id = await orphaned_card(llm, db)
            restart_first = trial % 2 == 1  # every other trial: the click lands on a later process
            async with router_on(llm, db) as bot:
                if restart_first:
                    await bot.say("anyone?")
                clicks = [
                    CardClick(card_id, CardAction.CATCH_UP, ALICE, thread=thread_key()),
                    CardClick(card_id, CardAction.FRESH, BOB, thread=thread_key()),
                    CardClick(card_id, CardAction.CATCH_UP, ALICE, thread=thread_key()),
                    CardClick(card_id, CardAction.CATCH_UP, ALICE, thread=thread_key()),
                ]
                results = await asyncio.gather(*(bot.router.handle_click(c) for c in clicks))
                await bot.router.idle()
                winners = sum(1 for r in results if r.private_note is None)
                outcomes["trials"] += 1
                outcomes["one outcome"] += int(winners == 1)
                outcomes["answers"] += len(bot.outbox.replies)
                outcomes["losers told"] += sum(
                    1 for r in results if r.private_note and "already chose" in r.private_note
                )
    ok = outcomes["one outcome"] == outcomes["trials"] == outcomes["answers"]
    return Result(
        "R2",
        "4 simultaneous clicks (2 users, both buttons, double clicks), half after a restart",
        ", ".join(f"{k} {v}" for k, v in outcomes.items()),
        "-",
        "-",
        "exactly one outcome each time",
        ok,
    )


# -- R3 ------------------------------------------------------------------------------------------------------


def _rate_limited(fake: FakeLLM) -> None:
    for _ in range(3):
        fake.fail(status=429, retry_after=1.0)


def _server_error(fake: FakeLLM) -> None:
    fake.fail_always(status=500)


def _hang(fake: FakeLLM) -> None:
    for _ in range(3):
        fake.hang(5)  # the drill's timeout is 1 s


def _cut_stream(fake: FakeLLM) -> None:
    fake.break_stream(after_chars=24)
    fake.reply("A reply long enough to be cut in half by the broken stream.")


FAULTS: dict[str, Callable[[FakeLLM], None]] = {
    "429 Retry-After 1s": _rate_limited,
    "500": _server_error,
    "hang past the timeout": _hang,
    "stream cut in half": _cut_stream,
}


async def r3_faults(llm: FakeLLM) -> list[Result]:
    results = []
    for name, inject in FAULTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            async with router_on(llm, Path(tmp) / "r3.db", llm_timeout_s=1.0) as bot:
                await bot.say("warm-up")
                llm.clear_faults()
                before = len(llm.requests)
                inject(llm)
                await bot.say("question during the fault")
                tries = len(llm.requests) - before
                notices = len(bot.outbox.notices)
                llm.clear_faults()
                llm.reply("Back to normal.")
                await bot.say("next question")
                last = llm.requests[-1].body["messages"]
                recovered = bot.outbox.replies[-1].text == "Back to normal." and any(
                    "question during the fault" in str(m["content"]) for m in last
                )
        ok = tries <= 3 and notices == 1 and recovered
        results.append(
            Result(
                "R3",
                f"model fault: {name}",
                f"{tries} tries, {notices} notice, next message "
                f"{'answered with the missed one' if recovered else 'FAILED'}",
                "-",
                "-",
                "<= 3 tries, 1 friendly notice, recovers",
                ok,
            )
        )
    return results


async def run() -> list[Result]:
    async with FakeLLM() as llm:
        results = [await r2_clicks(llm)]
        results += await r3_faults(llm)
    return results


if __name__ == "__main__":
    for result in asyncio.run(run()):
        print(result.row())
