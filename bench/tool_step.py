"""P7: the bot's cost per tool step, against a bare MCP client call to the same server in the same run.

Through the real router: the fake model answers a message with one call to the fake MCP server's instant
``echo`` tool (over stdio), then with text. The figure is the time from the model's tool-call response being
complete (the fake's last byte) to the next model request arriving at the fake: litellm's handling of the
streamed call, the ToolBox's checks, the MCP round trip, the trail write, and building and sending the next
request. The baseline is the same ``echo`` call made with the ``mcp`` SDK's ClientSession directly, timed
around ``call_tool``. 200 turns, each in a thread of its own so the history stays the same size.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from bench.common import ROOT, Result, percentile, scratch_router
from bots.seam.messages import Author, IncomingMessage, ThreadKey
from tests.fakes.llm import FakeLLM, ScriptedCall
from tests.fakes.mcp_server import stdio_entry, write_config

TURNS = 200
WARMUP = 10


async def _bare_calls(n: int) -> list[float]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "tests.fakes.mcp_server"], cwd=str(ROOT))
    timings: list[float] = []
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        for i in range(n + WARMUP):
            started = time.perf_counter()
            await session.call_tool("echo", {"text": f"ping {i}"})
            if i >= WARMUP:
                timings.append((time.perf_counter() - started) * 1000)
    return timings


async def _bot_steps(n: int) -> list[float]:
    author = Author("u", "User")
    with tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp) / "mcp.json", {"fake": stdio_entry()})
        async with FakeLLM() as fake:
            scratch = scratch_router(fake, Path(tmp) / "bench.db", mcp_config=config, llm_function_calling=True)
            async with scratch as (router, _):
                await router.resume("test")
                await asyncio.wait_for(router.tools_settled(), timeout=60)
                gaps: list[float] = []
                for i in range(n + WARMUP):
                    fake.call_tools(ScriptedCall("fake__echo", {"text": f"ping {i}"}))
                    fake.reply("done")
                    before = len(fake.requests)
                    key = ThreadKey("test", "bench", "c", f"t{i}")
                    incoming = IncomingMessage(thread=key, message_id=f"m{i}", author=author, text="go")
                    await router.handle_message(incoming)
                    await router.idle()
                    first, second = fake.requests[before], fake.requests[before + 1]
                    assert first.finished_at is not None and second.tool_calls == ()
                    if i >= WARMUP:
                        gaps.append((second.received_at - first.finished_at) * 1000)
    return gaps


async def run() -> list[Result]:
    bare = await _bare_calls(TURNS)
    steps = await _bot_steps(TURNS)
    bare_p50, step_p50 = percentile(bare, 50), percentile(steps, 50)
    return [
        Result(
            "P7",
            f"tool step: model's tool_calls done -> next model request, instant MCP tool over stdio, n={TURNS}",
            f"p50 {step_p50:.1f} ms, p99 {percentile(steps, 99):.1f} ms",
            f"bare mcp call_tool p50 {bare_p50:.1f} ms, p99 {percentile(bare, 99):.1f} ms",
            f"+{step_p50 - bare_p50:.1f} ms",
            "p50 <= bare + 2 ms",
            step_p50 <= bare_p50 + 2.0,
        )
    ]


if __name__ == "__main__":
    for result in asyncio.run(run()):
        print(result.row())
