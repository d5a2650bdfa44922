"""P4: Catch me up on a 10,000-message thread, against the fake model's fixed latency L.

The thread is written straight into SQLite (as a long-lived thread would be), the bot restarts, a message
gets the card, and the clock runs from the click until the waiting message's answer is posted. Every request
is checked against the 16k window. Then 20 more messages are exchanged, the bot restarts again, and the second
catch-up must send only the previous summary and what came after it.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from agent.llm import litellm_module
from agent.summarize import PREVIOUS_LABEL
from bench.common import Result, scratch_router, until
from bots.seam.messages import Author, CardAction, CardClick, IncomingMessage, ThreadKey
from bots.seam.ports import CardState
from storage.migrations import migrate
from storage.sqlite.db import open_database
from tests.fakes.llm import FakeLLM

MESSAGES = 10_000
WINDOW = 16_384
LATENCY_S = 1.0
KEY = ThreadKey("test", "bench", "c", "long")
ALICE = Author("U1", "Alice")


def _fill(connection: object, *, now: str) -> None:
    people = ["Alice", "Bob", "Chen", "Dana"]
    connection.execute(  # type: ignore[attr-defined]
        "INSERT INTO threads (platform, workspace, channel, thread, created_utc) VALUES (?, ?, ?, ?, ?)",
        (KEY.platform, KEY.workspace, KEY.channel, KEY.thread, now),
    )
    rows = []
    for i in range(MESSAGES):
        if i % 2:
            rows.append(
                (f"m{i}", "bot", "threadkeeper", "assistant", f"Item {i}: noted, the estimate is {i % 13} days.", None)
            )
        else:
            who = people[(i // 2) % len(people)]
            rows.append(
                (f"m{i}", who, who, "user", f"Item {i}: {who} thinks task {i} needs review before Friday.", "answered")
            )
    connection.executemany(  # type: ignore[attr-defined]
        "INSERT INTO messages (thread_id, platform_message_id, author_id, author_name, role, content, reply_state, "
        "sent_utc, logged_utc) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(*row, now, now) for row in rows],
    )


async def _catch_up(fake: FakeLLM, db: Path, text: str, message_id: str) -> tuple[float, float]:
    """Seconds from the click until the card is resolved (caught up), and until the answer is posted."""
    async with scratch_router(fake, db, llm_context_window=WINDOW) as (router, outbox):
        await router.handle_message(IncomingMessage(KEY, message_id, ALICE, text))
        card = outbox.cards_posted[-1]
        started = time.perf_counter()
        await router.handle_click(CardClick(card.card_id, CardAction.CATCH_UP, ALICE, thread=KEY))
        await until(lambda: any(view.state is CardState.CAUGHT_UP for _, view in outbox.card_updates))
        caught_up = time.perf_counter() - started
        await router.idle()
        answered = time.perf_counter() - started
        assert outbox.replies, "the waiting message was not answered"
    return caught_up, answered


async def run() -> list[Result]:
    await litellm_module()  # a one-time import cost per process; P3 measures start-up separately
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "bench.db"
        db = await open_database(db_path)
        await migrate(db)
        await db.run(partial(_fill, now=datetime.now(UTC).isoformat()))
        await db.close()
        async with FakeLLM(latency_s=LATENCY_S, max_context_tokens=WINDOW) as fake:
            fake.reply_with(lambda body: "Summary: tasks need review before Friday; estimates noted.")
            elapsed, answered = await _catch_up(fake, db_path, "Where are we on the review?", "q1")
            first_requests = len(fake.requests)
            over = [r for r in fake.requests if r.status != 200]
            # 20 more messages in the caught-up session, then another restart.
            fake.latency_s = 0.0
            async with scratch_router(fake, db_path, llm_context_window=WINDOW) as (router, outbox):
                await router.handle_message(IncomingMessage(KEY, "q2", ALICE, "Still there?"))
                await router.handle_click(
                    CardClick(outbox.cards_posted[-1].card_id, CardAction.CATCH_UP, ALICE, thread=KEY)
                )
                await router.idle()
                mark = len(fake.requests)
                for i in range(20):
                    await router.handle_message(IncomingMessage(KEY, f"new{i}", ALICE, f"New point {i}"))
                    await router.idle()
            mark = len(fake.requests)
            await _catch_up(fake, db_path, "And now?", "q3")
            second = [r for r in fake.requests[mark:] if not r.stream]
    incremental = (
        len(second) == 1
        and PREVIOUS_LABEL in second[0].prompt_text
        and all(f"New point {i}" in second[0].prompt_text for i in range(20))
        and "Item 0:" not in second[0].prompt_text
    )
    target = 3 * LATENCY_S + 0.5
    return [
        Result(
            "P4",
            f"click -> caught up, {MESSAGES:,}-message thread, {WINDOW // 1024}k window ({first_requests} requests)",
            f"{elapsed:.2f} s",
            f"L = {LATENCY_S:.2f} s",
            f"{elapsed / LATENCY_S:.2f}L",
            "<= 3L + 0.5 s",
            elapsed <= target and not over,
        ),
        Result(
            "P4a",
            "click -> waiting message answered (one more request after the catch-up)",
            f"{answered:.2f} s",
            f"L = {LATENCY_S:.2f} s",
            f"{answered / LATENCY_S:.2f}L",
            "<= 4L + 0.5 s",
            answered <= target + LATENCY_S,
        ),
        Result(
            "P4b",
            "requests over the window / second catch-up incremental",
            f"{len(over)} over; {'yes' if incremental else 'NO'}",
            "-",
            "-",
            "0; previous summary + new only",
            not over and incremental,
        ),
    ]


if __name__ == "__main__":
    for result in asyncio.run(run()):
        print(result.row())
