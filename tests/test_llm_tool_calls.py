"""Tool calls through the real litellm against the loopback model: JSON, SSE deltas, parallel and split calls.

If these pass, the fake model speaks OpenAI's tool-call format the way litellm reads it, and
``LLMClient.stream`` assembles streamed calls (by index, arguments split across chunks) into whole ones.
"""

from __future__ import annotations

import json
from typing import Any

import litellm
import pytest

from agent.llm import LLMClient, LLMConfig, RequestedCall
from tests.fakes.llm import FakeLLM, ScriptedCall

pytestmark = pytest.mark.timeout(30)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "fake__lookup",
            "description": "Look up a key.",
            "parameters": {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]},
        },
    }
]


def client(fake: FakeLLM) -> LLMClient:
    return LLMClient(
        LLMConfig(model="openai/fake", api_base=fake.base_url, api_key="sk-test", timeout_s=5.0),
        context_window_fallback=8192,
    )


async def stream_calls(fake: FakeLLM) -> tuple[str, list[RequestedCall]]:
    calls: list[RequestedCall] = []
    deltas = client(fake).stream([{"role": "user", "content": "hi"}], tools=TOOLS, calls=calls)
    text = "".join([d async for d in deltas])
    return text, calls


async def test_a_json_reply_carries_openai_format_tool_calls(fake_llm: FakeLLM) -> None:
    fake_llm.call_tools(ScriptedCall("fake__lookup", {"key": "a"}, id="call_a"))
    response: Any = await litellm.acompletion(
        model="openai/fake",
        api_base=fake_llm.base_url,
        api_key="sk-test",
        messages=[{"role": "user", "content": "hi"}],
        tools=TOOLS,
        max_retries=0,
    )
    message = response.choices[0].message
    assert response.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls[0].id == "call_a"
    assert message.tool_calls[0].function.name == "fake__lookup"
    assert json.loads(message.tool_calls[0].function.arguments) == {"key": "a"}
    assert fake_llm.requests[0].tool_names == ["fake__lookup"]


async def test_streamed_calls_are_assembled_whole_after_leading_text(fake_llm: FakeLLM) -> None:
    fake_llm.call_tools(ScriptedCall("fake__lookup", {"key": "a"}), text="Let me check.")
    text, calls = await stream_calls(fake_llm)
    assert text == "Let me check."
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("fake__lookup", {"key": "a"})]
    assert calls[0].id == fake_llm.requests[0].tool_calls[0].id


async def test_parallel_calls_with_interleaved_split_arguments_are_kept_apart(fake_llm: FakeLLM) -> None:
    long_key = "k" * 300
    fake_llm.call_tools(
        ScriptedCall("fake__lookup", {"key": long_key}, pieces=40),
        ScriptedCall("fake__lookup", {"key": "second"}, pieces=7),
        ScriptedCall("fake__lookup", {"key": "third"}, pieces=1),
        interleave=True,
    )
    text, calls = await stream_calls(fake_llm)
    assert text == ""
    assert [json.loads(c.arguments)["key"] for c in calls] == [long_key, "second", "third"]
    assert len({c.id for c in calls}) == 3


async def test_a_request_without_tools_offers_none(fake_llm: FakeLLM) -> None:
    _ = [d async for d in client(fake_llm).stream([{"role": "user", "content": "hi"}])]
    assert fake_llm.requests[0].tools is None
