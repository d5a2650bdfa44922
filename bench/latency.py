"""P1 (event -> LLM request, LLM done -> reply posted) and P3 (cold start), against echo-bot baselines.

Every bot runs as its own process (``threadkeeper run``, or the bare echo bots in this folder) against the
loopback fakes in this process; every timestamp is taken by a fake on one monotonic clock, so the figures are
what a platform and a model would observe. The fake model answers at once (one chunk), so the bot's own cost is
everything between the event and the model request plus everything between the model's last byte and the
reply's last write. The baselines: the whole event -> reply time of an echo bot built on the same library, and
litellm alone (``acompletion()`` -> request on the wire, last byte -> end of stream) with a request body the
bot sent in the same run.

P1 sends its messages one at a time, round-robin over ``BENCH_P1_THREADS`` live threads (20) of
``BENCH_P1_PER_THREAD`` messages each (50): typical threads, so the size of one history does not dominate.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

from bench.common import Result, median, percentile, until
from bots.slack.mrkdwn import to_mrkdwn
from tests.fakes.discord import CHANNEL, FakeDiscord, RestCall
from tests.fakes.llm import FakeLLM, RecordedRequest
from tests.fakes.process import child_process as process
from tests.fakes.settings import fake_model_env
from tests.fakes.slack import FakeSlack, Payloads

ROOT = Path(__file__).resolve().parent.parent
THREADS = int(os.environ.get("BENCH_P1_THREADS", "20"))
PER_THREAD = int(os.environ.get("BENCH_P1_PER_THREAD", "50"))
MESSAGES = THREADS * PER_THREAD
STARTS = int(os.environ.get("BENCH_P3_STARTS", "5"))


def _answer_after(llm: FakeLLM, seen: int) -> RecordedRequest | None:
    """The finished answer (streamed) request among those after ``seen``; compaction summaries are skipped."""
    return next((r for r in llm.requests[seen:] if r.stream and r.finished_at), None)


def _last_post(fake: FakeDiscord, content: str) -> RestCall:
    """The last REST call that posted or edited ``content`` (the slash commands' registration body is a list)."""
    return [c for c in fake.calls if isinstance(c.json, dict) and c.json.get("content") == content][-1]


def bot_env(llm: FakeLLM, db: Path) -> dict[str, str]:
    return fake_model_env(llm.base_url, db)


# -- Discord --------------------------------------------------------------------------------------------------


def discord_env(fake: FakeDiscord) -> dict[str, str]:
    return {"DISCORD_TOKEN": "bench-token", "DISCORD_API_BASE": fake.api_base, "DISCORD_GATEWAY_URL": fake.gateway_url}


async def discord_latency(llm: FakeLLM, db: Path) -> tuple[list[float], list[float], list[float]]:
    async with FakeDiscord() as fake:
        async with process(["-m", "bots", "run"], bot_env(llm, db) | discord_env(fake)):
            await until(lambda: fake.identified == 1, 60)
            await asyncio.sleep(2.5)  # discord.py's guild_ready_timeout before on_ready
            threads = []
            for t in range(THREADS):
                root = await fake.user_says(f"benchmark thread {t}", mention_bot=True)
                threads.append(str(root["id"]))
                await until(lambda: len(fake.texts_in(threads[-1])) == 1)
            to_request, to_posted = [], []
            for i in range(MESSAGES):
                thread = threads[i % THREADS]
                seen = len(llm.requests)
                started = time.monotonic()
                await fake.user_says(f"message {i}", channel_id=thread)
                await until(lambda seen=seen: _answer_after(llm, seen) is not None)
                request = _answer_after(llm, seen)
                assert request is not None
                await until(lambda request=request, thread=thread: fake.texts_in(thread)[-1] == request.reply)
                write = _last_post(fake, request.reply)
                to_request.append(request.received_at - started)
                to_posted.append(write.at - (request.finished_at or 0))
        async with process([str(ROOT / "bench" / "echo_discord.py")], discord_env(fake)):
            await until(lambda: fake.identified == 2, 60)
            echo = []
            for i in range(MESSAGES):
                started = time.monotonic()
                await fake.user_says(f"echo {i}")
                await until(lambda i=i: fake.texts_in(CHANNEL) and fake.texts_in(CHANNEL)[-1] == f"echo {i}")
                write = _last_post(fake, f"echo {i}")
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
            roots = []
            for t in range(THREADS):
                seen = len(llm.requests)
                roots.append(Payloads.mention(f"benchmark thread {t}"))
                await fake.send(Payloads.event_body(roots[-1]))
                await until(lambda seen=seen: _answer_after(llm, seen) is not None, 60)
                first = _answer_after(llm, seen)
                assert first is not None
                text = to_mrkdwn(first.reply or "")
                await until(lambda text=text: any(c.params.get("text") == text for c in fake.calls_to("chat.update")))
            to_request, to_posted = [], []
            for i in range(MESSAGES):
                root = roots[i % THREADS]
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


def typical_body(llm: FakeLLM) -> dict[str, object]:
    """The median-sized answer request the bot sent in this run (the P1 threads' histories at about half)."""
    answers = sorted((r for r in llm.requests if r.stream), key=lambda r: len(str(r.body["messages"])))
    return answers[len(answers) // 2].body


async def litellm_alone(
    llm: FakeLLM, body: dict[str, object], n: int = 200
) -> tuple[list[float], list[float], list[float]]:
    """litellm by itself with the bot's request body, in this process.

    Three figures per call: acompletion() -> request on the wire; the model's last byte -> the last text
    chunk out of litellm (what a bot posting that text waits for at least); last byte -> end of the stream.
    """
    from agent.llm import litellm_module

    litellm = await litellm_module()
    args = {
        "model": f"openai/{body['model']}",
        "messages": body["messages"],
        "stream": True,
        "stream_options": body.get("stream_options"),
        "api_base": llm.base_url,
        "api_key": "sk-bench",
        "timeout": 60,
        "max_retries": 0,
        "num_retries": 0,
    }
    to_wire, last_text, tail = [], [], []
    for _ in range(n):
        seen, started = len(llm.requests), time.monotonic()
        response = await litellm.acompletion(**args)
        text_at = started
        async for chunk in response:
            if chunk.choices and chunk.choices[0].delta.content:
                text_at = time.monotonic()
        ended = time.monotonic()
        done = llm.requests[seen].finished_at or ended
        to_wire.append(llm.requests[seen].received_at - started)
        last_text.append(text_at - done)
        tail.append(ended - done)
    return to_wire, last_text, tail


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
                wire, last_text, tail = await litellm_alone(llm, typical_body(llm))
                own = [a + b for a, b in zip(to_request, to_posted, strict=True)]
                request_target = median(echo) + median(wire) + 0.001
                posted_target = median(echo) + 0.001
                results.append(
                    Result(
                        "P1",
                        f"{name}: event -> LLM request (p50 {ms(median(to_request))}, p99 "
                        f"{ms(percentile(to_request, 99))}) + LLM done -> reply posted (p50 {ms(median(to_posted))}, "
                        f"p99 {ms(percentile(to_posted, 99))}); {THREADS} threads x {PER_THREAD} messages",
                        f"p50 {ms(median(own))}, p99 {ms(percentile(own, 99))}",
                        f"echo bot p50 {ms(median(echo))}, p99 {ms(percentile(echo, 99))}; litellm alone p50 "
                        f"{ms(median(wire))} to the wire, last byte -> last text {ms(median(last_text))}, "
                        f"-> end of stream {ms(median(tail))}",
                        f"{median(own) / median(echo):.2f}x echo",
                        f"request p50 <= {ms(request_target)} (echo + litellm + 1 ms); "
                        f"posted p50 <= {ms(posted_target)} (echo + 1 ms)",
                        median(to_request) <= request_target and median(to_posted) <= posted_target,
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
    return results


if __name__ == "__main__":
    for result in asyncio.run(run()):
        print(result.row())
