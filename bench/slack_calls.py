"""P6: Slack Web API calls for one answered message while a 20-second reply streams.

The real Slack adapter (Socket Mode) against the loopback Slack; the fake model streams 440 chunks 50 ms
apart. Natively (the workspace serves chat.startStream): one start, one stop and at most one append a second,
no post. In a workspace that refuses the streaming methods (P6f): one refused start, then one
chat.postMessage and at most about one chat.update a second, one final flush and one update that adds the
feedback buttons. Never a history read.
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
    return [await _native(), await _fallback()]


async def _reply(*, streaming: bool) -> tuple[FakeSlack, int, float]:
    """One streamed reply on the loopback Slack: the fake, the index of the reply's first call, seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeLLM(chunk_chars=8, chunk_delay_s=DELAY_S) as llm, FakeSlack(streaming=streaming) as slack:
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
    return slack, before, elapsed


def _rate(gaps: list[float]) -> float:
    """Writes a second between the first and the last throttled one (the first is at once, so not over elapsed)."""
    return len(gaps) / sum(gaps) if gaps else 0.0


def _reads(calls: list[str]) -> int:
    return len([c for c in calls if c.startswith(("conversations.history", "conversations.replies"))])


async def _native() -> Result:
    slack, before, elapsed = await _reply(streaming=True)
    calls = [c.method for c in slack.calls[before:]]
    starts, appends, stops = (calls.count(f"chat.{m}Stream") for m in ("start", "append", "stop"))
    times = [c.at for c in slack.calls[before:] if c.method == "chat.appendStream"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    per_second = _rate(gaps)
    posts = calls.count("chat.postMessage")
    return Result(
        "P6",
        f"Slack calls for one {elapsed:.1f} s natively streamed reply ({CHUNKS} chunks)",
        f"{starts} startStream, {appends} appendStream ({per_second:.2f}/s, shortest gap {min(gaps):.2f} s), "
        f"{stops} stopStream (with the feedback buttons), {posts} postMessage, "
        f"{calls.count('chat.update')} update, {_reads(calls)} history reads",
        "-",
        "-",
        "1 start + 1 stop + <= 1 append/s; 0 history",
        starts == 1 and stops == 1 and posts == 0 and min(gaps) >= 0.95 and per_second <= 1.0 and _reads(calls) == 0,
    )


async def _fallback() -> Result:
    slack, before, elapsed = await _reply(streaming=False)
    calls = [c.method for c in slack.calls[before:]]
    posts, updates, starts = (
        calls.count("chat.postMessage"),
        calls.count("chat.update"),
        calls.count("chat.startStream"),
    )
    # Throttled updates come at most once a second; then the final text at once, with the feedback buttons.
    times = [c.at for c in slack.calls[before:] if c.method == "chat.update"]
    gaps = [b - a for a, b in itertools.pairwise(times[:-1])]
    per_second = _rate(gaps)
    return Result(
        "P6f",
        f"the same where the workspace refuses native streaming ({elapsed:.1f} s)",
        f"{starts} startStream (refused), {posts} postMessage, {updates} update ({per_second:.2f}/s throttled "
        f"+ 1 final flush carrying the buttons, shortest gap {min(gaps):.2f} s), {_reads(calls)} history reads",
        "-",
        "-",
        "1 post + <= 1 update/s; 0 history",
        starts == 1 and posts == 1 and min(gaps) >= 0.95 and per_second <= 1.0 and _reads(calls) == 0,
    )


if __name__ == "__main__":
    for result in asyncio.run(run()):
        print(result.row())
