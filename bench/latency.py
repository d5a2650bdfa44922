"""P1 (event -> LLM request, LLM done -> reply posted) and P3 (cold start), against echo-bot baselines.

Every bot runs as its own process (``threadkeeper run``, or the bare echo bots in this folder) against the
loopback fakes in this process; every timestamp is taken by a fake on one monotonic clock, so the figures are
what a platform and a model would observe. The fake model answers at once (one chunk), so the bot's own cost is
everything between the event and the model request plus everything between the model's last byte and the
reply's last write. The baseline is the whole event -> reply time of an echo bot built on the same library.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

from bench.common import Result, median, percentile, until
from bots.slack.mrkdwn import to_mrkdwn
from tests.fakes.discord import CHANNEL, FakeDiscord
from tests.fakes.llm import FakeLLM, RecordedRequest
from tests.fakes.process import child_process as process
from tests.fakes.slack import FakeSlack, Payloads

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = int(os.environ.get("BENCH_P1_MESSAGES", "1000"))
STARTS = int(os.environ.get("BENCH_P3_STARTS", "5"))


def _answer_after(llm: FakeLLM, seen: int) -> RecordedRequest | None:
    """The finished answer (streamed) request among those after ``seen``; compaction summaries are skipped."""
    return next((r for r in llm.requests[seen:] if r.stream and r.finished_at), None)


def bot_env(llm: FakeLLM, db: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": f"sqlite:///{db}",
        "LLM_MODEL": "openai/fake",
        "LLM_API_BASE": llm.base_url,
        "LLM_API_KEY": "sk-bench",
    }


# -- Discord --------------------------------------------------------------------------------------------------


def discord_env(fake: FakeDiscord) -> dict[str, str]:
    return {"DISCORD_TOKEN": "bench-token", "DISCORD_API_BASE": fake.api_base, "DISCORD_GATEWAY_URL": fake.gateway_url}


async def discord_latency(llm: FakeLLM, db: Path) -> tuple[list[float], list[float], list[float]]:
    async with FakeDiscord() as fake:
        async with process(["-m", "bots", "run"], bot_env(llm, db) | discord_env(fake)):
            await until(lambda: fake.identified == 1, 60)
            await asyncio.sleep(2.5)  # discord.py's guild_ready_timeout before on_ready
            root = await fake.user_says("benchmark thread", mention_bot=True)
            thread = str(root["id"])
            await until(lambda: len(fake.texts_in(thread)) == 1)
            to_request, to_posted = [], []
            for i in range(MESSAGES):
                seen = len(llm.requests)
                started = time.monotonic()
                await fake.user_says(f"message {i}", channel_id=thread)
                await until(lambda seen=seen: _answer_after(llm, seen) is not None)
                request = _answer_after(llm, seen)
                assert request is not None
                await until(lambda request=request: fake.texts_in(thread)[-1] == request.reply)
                write = [c for c in fake.calls if c.json and c.json.get("content") == request.reply][-1]
                to_request.append(request.received_at - started)
                to_posted.append(write.at - (request.finished_at or 0))
        async with process([str(ROOT / "bench" / "echo_discord.py")], discord_env(fake)):
            await until(lambda: fake.identified == 2, 60)
            echo = []
            for i in range(MESSAGES):
                started = time.monotonic()
                await fake.user_says(f"echo {i}")
                await until(lambda i=i: fake.texts_in(CHANNEL) and fake.texts_in(CHANNEL)[-1] == f"echo {i}")
                write = [c for c in fake.calls if c.json and c.json.get("content") == f"echo {i}"][-1]
                echo.append(write.at - started)
    return to_request, to_posted, echo


async def discord_cold_start(llm: FakeLLM, db: Path) -> tuple[list[float], list[float]]:
    ours, bare = [], []
    async with FakeDiscord() as fake:
        for args, env, out in (
            (["-m", "bots", "run"], bot_env(llm, db) | discord_env(fake), ours),
            ([str(ROOT / "bench" / "echo_discord.py")], discord_env(fake), bare),
        ):
            for _ in range(STARTS):
                before = fake.identified
                started = time.monotonic()
                async with process(args, env):
                    await until(lambda before=before: fake.identified > before, 60)
                    out.append(fake.identified_at[-1] - started)
    return ours, bare


# -- Slack ----------------------------------------------------------------------------------------------------


def slack_env(fake: FakeSlack) -> dict[str, str]:
    return {"SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_APP_TOKEN": "xapp-bench", "SLACK_API_URL": fake.api_url}


async def slack_latency(llm: FakeLLM, db: Path) -> tuple[list[float], list[float], list[float]]:
    async with FakeSlack() as fake:
        async with process(["-m", "bots", "run"], bot_env(llm, db) | slack_env(fake)):
            await until(lambda: fake.connected == 1, 60)
            root = Payloads.mention("benchmark thread")
            await fake.send(Payloads.event_body(root))
            await until(lambda: llm.requests and llm.requests[-1].finished_at)
            await until(
                lambda: any(
                    c.params.get("text") == to_mrkdwn(llm.requests[-1].reply or "")
                    for c in fake.calls_to("chat.update")
                )
            )
            to_request, to_posted = [], []
            for i in range(MESSAGES):
                seen = len(llm.requests)
                started = time.monotonic()
                await fake.send(Payloads.event_body(Payloads.message(f"message {i}", thread_ts=root["ts"])))
                await until(lambda seen=seen: _answer_after(llm, seen) is not None)
                request = _answer_after(llm, seen)
                assert request is not None
                text = to_mrkdwn(request.reply or "")
                await until(lambda text=text: fake.calls[-1].params.get("text") == text)
                to_request.append(request.received_at - started)
                to_posted.append(fake.calls[-1].at - (request.finished_at or 0))
        async with process([str(ROOT / "bench" / "echo_slack.py")], slack_env(fake)):
            await until(lambda: fake.connected == 1, 60)
            echo = []
            for i in range(MESSAGES):
                started = time.monotonic()
                await fake.send(Payloads.event_body(Payloads.message(f"echo {i}")))
                await until(lambda i=i: fake.calls and fake.calls[-1].params.get("text") == f"echo {i}")
                echo.append(fake.calls[-1].at - started)
    return to_request, to_posted, echo


async def slack_cold_start(llm: FakeLLM, db: Path) -> tuple[list[float], list[float]]:
    ours, bare = [], []
    async with FakeSlack() as fake:
        for args, env, out in (
            (["-m", "bots", "run"], bot_env(llm, db) | slack_env(fake), ours),
            ([str(ROOT / "bench" / "echo_slack.py")], slack_env(fake), bare),
        ):
            for _ in range(STARTS):
                before = len(fake.connected_at)
                started = time.monotonic()
                async with process(args, env):
                    await until(lambda before=before: len(fake.connected_at) > before, 60)
                    out.append(fake.connected_at[-1] - started)
    return ours, bare


async def client_overhead(llm: FakeLLM) -> tuple[list[float], list[float]]:
    """Call -> request-received for litellm.acompletion and for a plain aiohttp POST, same fake, same run."""
    import aiohttp

    from agent.llm import litellm_module

    litellm = await litellm_module()
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Alice: hi"}]
    via_litellm, via_aiohttp = [], []
    for _ in range(200):
        seen, started = len(llm.requests), time.monotonic()
        response = await litellm.acompletion(
            model="openai/fake", api_base=llm.base_url, api_key="x", messages=messages, stream=True, max_retries=0
        )
        async for _chunk in response:
            pass
        via_litellm.append(llm.requests[seen].received_at - started)
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            seen, started = len(llm.requests), time.monotonic()
            body = {"model": "fake", "messages": messages, "stream": True}
            async with session.post(f"{llm.base_url}/chat/completions", json=body) as response:
                await response.read()
            via_aiohttp.append(llm.requests[seen].received_at - started)
    return via_litellm, via_aiohttp


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


async def run() -> list[Result]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeLLM(chunk_chars=100_000) as llm:
            for name, latency, cold in (
                ("Discord", discord_latency, discord_cold_start),
                ("Slack", slack_latency, slack_cold_start),
            ):
                to_request, to_posted, echo = await latency(llm, Path(tmp) / f"{name}-p1.db")
                own = [a + b for a, b in zip(to_request, to_posted, strict=True)]
                ratio = median(own) / median(echo)
                results.append(
                    Result(
                        "P1",
                        f"{name}: event -> LLM request (p50 {ms(median(to_request))}, p99 "
                        f"{ms(percentile(to_request, 99))}) + LLM done -> reply posted (p50 {ms(median(to_posted))}, "
                        f"p99 {ms(percentile(to_posted, 99))}), n={len(own)}",
                        f"p50 {ms(median(own))}, p99 {ms(percentile(own, 99))}",
                        f"echo bot p50 {ms(median(echo))}, p99 {ms(percentile(echo, 99))}",
                        f"{ratio:.2f}x",
                        "p50 <= 1.3x",
                        ratio <= 1.3,
                    )
                )
                ours, bare = await cold(llm, Path(tmp) / f"{name}-p3.db")
                ratio = median(ours) / median(bare)
                results.append(
                    Result(
                        "P3",
                        f"{name}: process start -> {'gateway IDENTIFY' if name == 'Discord' else 'socket open'}"
                        f" (median of {STARTS})",
                        f"{median(ours):.2f} s",
                        f"bare bot {median(bare):.2f} s",
                        f"{ratio:.2f}x",
                        "<= 1.5x",
                        ratio <= 1.5,
                    )
                )
            via_litellm, via_aiohttp = await client_overhead(llm)
            results.append(
                Result(
                    "P1c",
                    "of which litellm: acompletion() call -> request on the wire (n=200, in-process)",
                    f"p50 {ms(median(via_litellm))}",
                    f"plain aiohttp POST p50 {ms(median(via_aiohttp))}",
                    f"{median(via_litellm) / median(via_aiohttp):.1f}x",
                    "(explains P1)",
                    None,
                )
            )
    return results


if __name__ == "__main__":
    for result in asyncio.run(run()):
        print(result.row())
