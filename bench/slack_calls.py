"""P6: Slack Web API calls for one answered message while a 20-second reply streams.

The real Slack adapter (Socket Mode) against the loopback Slack; the fake model streams 440 chunks 50 ms
apart. Slack allows about one write per second per channel: the reply must cost one chat.postMessage and at
most about one chat.update per second, and never read history.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import time
from pathlib import Path

from agent.llm import litellm_module
from bench.common import Result, settings_for
from bots.app import open_router
from bots.slack import SlackAdapter
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads
from tests.fakes.waiting import wait_until

CHUNKS = 440
DELAY_S = 0.05


async def run() -> list[Result]:
    await litellm_module()
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeLLM(chunk_chars=8, chunk_delay_s=DELAY_S) as llm, FakeSlack() as slack:
            llm.reply("".join(f"w{i:05d} " for i in range(CHUNKS))[: CHUNKS * 8])
            settings = settings_for(
                llm,
                Path(tmp) / "p6.db",
                slack_bot_token="xoxb-bench",
                slack_app_token="xapp-bench",
                slack_api_url=slack.api_url,
            )
            async with open_router(settings) as router:
                adapter = SlackAdapter(settings=settings, router=router)
                await adapter.start()
                await wait_until(lambda: slack.connected > 0)
                before = len(slack.calls)
                started = time.monotonic()
                await slack.send(Payloads.event_body(Payloads.mention("write me something long")))
                await wait_until(lambda: llm.requests and llm.requests[-1].finished_at, timeout=60)
                await router.idle()
                elapsed = time.monotonic() - started
                await adapter.stop()
    calls = [c.method for c in slack.calls[before:]]
    posts, updates = calls.count("chat.postMessage"), calls.count("chat.update")
    reads = len([c for c in calls if c.startswith(("conversations.history", "conversations.replies"))])
    # Throttled updates come at most once a second; the final text is flushed at once when the stream ends.
    times = [c.at for c in slack.calls[before:] if c.method == "chat.update"]
    gaps = [b - a for a, b in itertools.pairwise(times[:-1])]
    # Writes a second between the first and the last throttled one: the first goes out at once, so counting
    # over the whole elapsed time would charge the reply one write too many.
    per_second = len(gaps) / sum(gaps) if gaps else 0.0
    return [
        Result(
            "P6",
            f"Slack calls for one {elapsed:.1f} s streamed reply ({CHUNKS} chunks)",
            f"{posts} postMessage, {updates} update ({per_second:.2f}/s throttled + 1 final flush, "
            f"shortest gap {min(gaps):.2f} s), {reads} history reads",
            "-",
            "-",
            "1 post + <= 1 update/s; 0 history",
            posts == 1 and min(gaps) >= 0.95 and per_second <= 1.0 and reads == 0,
        ),
    ]


if __name__ == "__main__":
    for result in asyncio.run(run()):
        print(result.row())
