"""A session's history with tool calls, as litellm sends it to Anthropic: well formed even after a forget.

Anthropic refuses a ``tool_use`` block without a ``tool_result`` in the next message, roles that do not
alternate, and tool blocks without a ``tools`` definition. litellm (with ``modify_params``, set by
``agent.llm``) translates our OpenAI-format history; this test sends it, over real HTTP, to a loopback endpoint
in Anthropic's Messages format and checks the body Anthropic would have received.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from agent.llm import LLMClient, LLMConfig
from agent.session import AgentSession, UserTurn
from agent.summarize import Summarizer
from agent.tools import ToolBox, ToolOutput, ToolSpec
from tests.fakes.llm import FakeLLM, ScriptedCall
from tests.fakes.server import LoopbackServer

pytestmark = pytest.mark.timeout(60)


class FakeAnthropic:
    """POST /v1/messages: records the body, answers one text block."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self._server = LoopbackServer()

    async def _messages(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        return web.json_response(
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude",
                "content": [{"type": "text", "text": "ok"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 1, "output_tokens": 1},
            }
        )

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        return f"http://127.0.0.1:{await self._server.start(app)}"

    async def stop(self) -> None:
        await self._server.stop()


@pytest.fixture
async def anthropic() -> AsyncIterator[tuple[FakeAnthropic, str]]:
    fake = FakeAnthropic()
    base = await fake.start()
    yield fake, base
    await fake.stop()


class Notes:
    def specs(self) -> list[ToolSpec]:
        return [ToolSpec("notes__read", "Read a note.", {"type": "object"}, read_only=True)]

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolOutput:
        return ToolOutput("the note says 42")


def assert_anthropic_well_formed(body: dict[str, Any]) -> None:
    roles = [m["role"] for m in body["messages"]]
    assert roles[0] == "user" and all(a != b for a, b in itertools.pairwise(roles)), roles
    assert body.get("tools"), "tool blocks need a tools definition"
    messages = body["messages"]
    for index, message in enumerate(messages):
        uses = [b["id"] for b in message["content"] if isinstance(b, dict) and b.get("type") == "tool_use"]
        if uses:
            following = messages[index + 1]["content"]
            answered = {b["tool_use_id"] for b in following if isinstance(b, dict) and b.get("type") == "tool_result"}
            assert set(uses) <= answered, (uses, answered)


async def test_a_history_with_tool_calls_and_a_forgotten_reply_is_well_formed_for_anthropic(
    fake_llm: FakeLLM, anthropic: tuple[FakeAnthropic, str]
) -> None:
    openai = LLMClient(
        LLMConfig(model="openai/fake", api_base=fake_llm.base_url, api_key="sk-test", function_calling=True),
        context_window_fallback=8192,
    )
    session = AgentSession(llm=openai, summarizer=Summarizer(openai), system_prompt="Be brief.")
    fake_llm.call_tools(ScriptedCall("notes__read", {}), ScriptedCall("notes__read", {}))
    fake_llm.reply("It says 42.")
    turn = [UserTurn(author="Alice", text="What does the note say?", message_id=1)]
    _ = [d async for d in session.turn(turn, tools=ToolBox([Notes()]))]
    session.bind_reply(2)
    session.forget(message_id=2)  # the bot's reply deleted: its step's calls must keep their results

    fake, base = anthropic
    claude = LLMClient(
        LLMConfig(model="anthropic/claude-3-5-haiku-latest", api_base=base, api_key="sk-ant-test"),
        context_window_fallback=8192,
    )
    history = [*session.messages, {"role": "user", "content": "Alice: thanks"}]
    assert await claude.complete(history) == "ok"
    assert_anthropic_well_formed(fake.bodies[-1])
