"""The loopback model against the real litellm: if these pass, the agent and router tests exercise real HTTP.

Each test drives ``litellm.acompletion`` with ``max_retries=0`` (the openai SDK's own retries off), then asserts
on what litellm returned or raised *and* on what the fake recorded, so a fake that quietly answers the wrong
thing, or a litellm upgrade that maps errors differently, fails here first rather than deep in a scenario.

How litellm 1.110 surfaces the fake's faults (asserted below):
429 -> ``errors.RateLimitError``, 500 -> ``errors.InternalServerError``, 503 -> ``errors.ServiceUnavailableError``,
all with ``.status_code`` and the response headers (Retry-After) on ``.litellm_response_headers`` and
``.response.headers``; a hang past ``timeout`` -> ``errors.Timeout`` (status_code 408, no response); a stream
reset mid-body -> ``litellm.exceptions.MidStreamFallbackError`` (a ServiceUnavailableError, status_code 500) raised
from the iteration; a reset before a JSON answer -> ``errors.InternalServerError`` ("Connection error.");
a 400 in OpenAI's context-length wording -> ``errors.ContextWindowExceededError`` (a BadRequestError).
"""

from __future__ import annotations

import os

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import litellm
import pytest
from litellm import exceptions as errors
from litellm.exceptions import MidStreamFallbackError

from tests.fakes.llm import FakeLLM
from tests.fakes.waiting import wait_until

litellm.suppress_debug_info = True

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLM]:
    async with FakeLLM() as server:
        yield server


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


async def ask(fake: FakeLLM, text: str = "hello", **kwargs: Any) -> Any:
    """One litellm call with the openai SDK's retries off, so one call is one request."""
    return await litellm.acompletion(
        model="openai/fake",
        api_base=fake.base_url,
        api_key="sk-test-not-a-secret",
        messages=kwargs.pop("messages", user(text)),
        max_retries=0,
        **kwargs,
    )


async def ask_text(fake: FakeLLM, text: str = "hello", *, stream: bool = False, **kwargs: Any) -> str:
    response = await ask(fake, text, stream=stream, **kwargs)
    if not stream:
        return str(response.choices[0].message.content)
    return "".join([chunk.choices[0].delta.content or "" async for chunk in response])


# -- replies ----------------------------------------------------------------------------------------------------


async def test_explicit_start_and_stop_serve_on_a_loopback_port() -> None:
    server = FakeLLM()
    await server.start()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", server.base_url)
    assert await ask_text(server, "ping") == "echo: ping"
    await server.stop()
    with pytest.raises(errors.InternalServerError):  # litellm reports "Connection error." as a 500
        await ask(server, "anyone there?")


async def test_a_json_reply_has_the_openai_shape_and_usage(fake: FakeLLM) -> None:
    fake.reply("The answer is 42.")
    response = await ask(fake, "What is the answer?")
    assert response.choices[0].message.content == "The answer is 42."
    assert response.choices[0].finish_reason == "stop"
    usage = response.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    [request] = fake.requests
    assert request.stream is False and request.status == 200 and request.reply == "The answer is 42."
    assert request.body["model"] == "fake" and request.body["messages"] == user("What is the answer?")
    assert request.headers["Authorization"] == "Bearer sk-test-not-a-secret"


async def test_streamed_deltas_are_small_and_reassemble_to_the_scripted_text(fake: FakeLLM) -> None:
    text = "A streamed reply that arrives in many small pieces."
    fake.reply(text)
    response = await ask(fake, "stream please", stream=True)
    chunks = [chunk async for chunk in response]
    deltas = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert "".join(deltas) == text
    assert len(deltas) == -(-len(text) // 8) and all(len(d) <= 8 for d in deltas)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert fake.requests[0].stream is True and fake.requests[0].finished_at is not None


async def test_chunk_size_and_delay_are_configurable(fake: FakeLLM) -> None:
    fake.chunk_chars, fake.chunk_delay_s = 3, 0.05
    fake.reply("abcdefghijkl")
    arrivals: list[float] = []
    deltas: list[str] = []
    async for chunk in await ask(fake, stream=True):
        if chunk.choices[0].delta.content:
            deltas.append(chunk.choices[0].delta.content)
            arrivals.append(time.monotonic())
    assert deltas == ["abc", "def", "ghi", "jkl"]
    assert arrivals[-1] - arrivals[0] >= 3 * 0.05 * 0.8


async def test_stream_usage_chunk_is_sent_when_include_usage_is_set(fake: FakeLLM) -> None:
    fake.reply("Counting tokens.")
    response = await ask(fake, stream=True, stream_options={"include_usage": True})
    usages = [chunk.usage for chunk in [c async for c in response] if getattr(chunk, "usage", None)]
    assert usages and usages[-1].completion_tokens > 0 and usages[-1].prompt_tokens > 0
    assert fake.requests[0].body["stream_options"] == {"include_usage": True}


async def test_the_sse_wire_format_is_what_openai_sends(fake: FakeLLM) -> None:
    fake.reply("wire check")
    body = {"model": "fake", "messages": user("hi"), "stream": True, "stream_options": {"include_usage": True}}
    async with aiohttp.ClientSession() as http, http.post(f"{fake.base_url}/chat/completions", json=body) as resp:
        content_type = resp.headers["Content-Type"]
        raw = (await resp.read()).decode()
    assert content_type == "text/event-stream"
    events = [line.removeprefix("data: ") for line in raw.split("\n\n") if line]
    assert all(line.startswith("data: ") for line in raw.split("\n\n") if line)
    assert events[-1] == "[DONE]"
    payloads = [json.loads(event) for event in events[:-1]]
    assert {p["object"] for p in payloads} == {"chat.completion.chunk"}
    assert "".join(p["choices"][0]["delta"].get("content", "") for p in payloads if p["choices"]) == "wire check"
    assert [p["choices"][0]["finish_reason"] for p in payloads if p["choices"]][-1] == "stop"
    assert payloads[-1]["choices"] == [] and payloads[-1]["usage"]["total_tokens"] > 0


async def test_replies_come_from_the_queue_then_the_function_then_an_echo(fake: FakeLLM) -> None:
    assert await ask_text(fake, "x" * 100) == "echo: " + "x" * 60
    fake.reply("first")
    fake.reply("second")
    fake.reply_with(lambda body: f"computed from {len(body['messages'])} messages")
    answers = [await ask_text(fake, f"q{i}", stream=i % 2 == 1) for i in range(4)]
    assert answers == ["first", "second", "computed from 1 messages", "computed from 1 messages"]


async def test_latency_delays_every_answer(fake: FakeLLM) -> None:
    fake.latency_s = 0.3
    started = time.monotonic()
    await ask_text(fake)
    assert time.monotonic() - started >= 0.3


# -- faults ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_429_is_a_rate_limit_error_carrying_retry_after(fake: FakeLLM, stream: bool) -> None:
    fake.fail(status=429, retry_after=1.5)
    with pytest.raises(errors.RateLimitError) as caught:
        await ask_text(fake, stream=stream)
    assert caught.value.status_code == 429
    assert getattr(caught.value, "litellm_response_headers")["retry-after"] == "1.5"  # noqa: B009
    assert caught.value.response.headers["Retry-After"] == "1.5"
    assert caught.value.response.json()["error"]["code"] == "rate_limit_exceeded"
    assert [(r.status, r.fault) for r in fake.requests] == [(429, "status")]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("status", "error"), [(500, errors.InternalServerError), (503, errors.ServiceUnavailableError)]
)
async def test_server_errors_map_to_litellm_errors(
    fake: FakeLLM, stream: bool, status: int, error: type[Exception]
) -> None:
    fake.fail(status=status)
    fake.reply("after the fault")
    with pytest.raises(error) as caught:
        await ask_text(fake, stream=stream)
    assert getattr(caught.value, "status_code") == status  # noqa: B009
    assert len(fake.requests) == 1
    assert await ask_text(fake, stream=stream) == "after the fault"


async def test_faults_are_consumed_in_order_before_any_reply(fake: FakeLLM) -> None:
    fake.reply("finally")
    fake.fail(status=429)
    fake.fail(status=500)
    with pytest.raises(errors.RateLimitError):
        await ask(fake)
    with pytest.raises(errors.InternalServerError):
        await ask(fake)
    assert await ask_text(fake) == "finally"
    assert [r.status for r in fake.requests] == [429, 500, 200]
    assert [r.reply for r in fake.requests] == [None, None, "finally"]


async def test_a_model_that_is_down_fails_every_request_until_cleared(fake: FakeLLM) -> None:
    fake.fail_always(status=503)
    for _ in range(3):
        with pytest.raises(errors.ServiceUnavailableError):
            await ask(fake)
    fake.clear_faults()
    assert await ask_text(fake, "back?") == "echo: back?"
    assert [r.status for r in fake.requests] == [503, 503, 503, 200]


@pytest.mark.parametrize("stream", [False, True])
async def test_a_hang_is_a_timeout_and_does_not_use_up_a_reply(fake: FakeLLM, stream: bool) -> None:
    fake.hang(10)
    fake.reply("the reply meant for the retry")
    started = time.monotonic()
    with pytest.raises(errors.Timeout) as caught:
        await ask_text(fake, stream=stream, timeout=0.5)
    assert 0.4 <= time.monotonic() - started < 2.0
    assert caught.value.status_code == 408
    await wait_until(lambda: fake.requests[0].status == 0)  # the fake noticed the client hung up
    assert await ask_text(fake, stream=stream) == "the reply meant for the retry"
    assert len(fake.requests) == 2


async def test_a_short_hang_then_answers_normally(fake: FakeLLM) -> None:
    fake.hang(0.3)
    started = time.monotonic()
    assert await ask_text(fake, "patience", timeout=5) == "echo: patience"
    assert time.monotonic() - started >= 0.3
    assert fake.requests[0].fault == "hang" and fake.requests[0].status == 200


async def test_a_broken_stream_raises_mid_iteration_after_exactly_n_chars(fake: FakeLLM) -> None:
    fake.break_stream(after_chars=10)
    fake.reply("0123456789 and the rest that never arrives")
    received: list[str] = []
    response = await ask(fake, stream=True)
    with pytest.raises(MidStreamFallbackError) as caught:
        async for chunk in response:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "0123456789"
    assert isinstance(caught.value, errors.ServiceUnavailableError) and caught.value.status_code == 500
    [request] = fake.requests
    assert request.fault == "break" and request.finished_at is None


async def test_a_stream_shorter_than_the_break_point_is_still_cut_before_done(fake: FakeLLM) -> None:
    fake.break_stream(after_chars=1000)
    fake.reply("short")
    with pytest.raises(MidStreamFallbackError):
        await ask_text(fake, stream=True)


async def test_a_break_on_a_json_request_resets_the_connection(fake: FakeLLM) -> None:
    fake.break_stream(after_chars=0)
    with pytest.raises(errors.InternalServerError, match="Connection error"):
        await ask(fake)
    assert [(r.status, r.fault) for r in fake.requests] == [(0, "break")]


# -- context enforcement ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_a_prompt_over_the_context_limit_is_context_window_exceeded(fake: FakeLLM, stream: bool) -> None:
    fake.max_context_tokens = 50
    assert await ask_text(fake, "short", stream=stream) == "echo: short"
    long_messages = user("many words " * 40)
    with pytest.raises(errors.ContextWindowExceededError) as caught:
        await ask_text(fake, messages=long_messages, stream=stream)
    assert isinstance(caught.value, errors.BadRequestError) and caught.value.status_code == 400
    expected = litellm.token_counter(model="openai/fake", messages=long_messages)
    assert [r.status for r in fake.requests] == [200, 400]
    assert fake.requests[1].tokens == expected and fake.max_seen_tokens == expected > 50
    assert fake.requests[1].reply is None  # a rejected prompt uses up no scripted reply


# -- recording --------------------------------------------------------------------------------------------------


async def test_every_request_is_recorded_with_its_prompt_text(fake: FakeLLM) -> None:
    fake.fail(status=500)
    conversation = [
        {"role": "system", "content": "Summarize the thread."},
        {"role": "user", "content": [{"type": "text", "text": "Alice: ship on the 14th"}]},
        {"role": "assistant", "content": "Noted."},
    ]
    with pytest.raises(errors.InternalServerError):
        await ask(fake, messages=conversation)
    await ask(fake, messages=[*conversation, {"role": "user", "content": "Bob: and the budget?"}], stream=True)
    first, second = fake.requests
    assert first.prompt_text == "Summarize the thread.\nAlice: ship on the 14th\nNoted."
    assert second.prompt_text.endswith("Noted.\nBob: and the budget?")
    assert first.received_at <= second.received_at and (first.stream, second.stream) == (False, True)
    assert fake.requests_containing("ship on the 14th") == [first, second]
    assert fake.requests_containing("budget") == [second]


# -- shutdown ---------------------------------------------------------------------------------------------------


def _fake_handler_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if "RequestHandler" in repr(t) or "_completions" in repr(t)]


async def test_stop_does_not_wait_for_a_hanging_request() -> None:
    server = FakeLLM()
    await server.start()
    server.hang(30)
    call = asyncio.create_task(ask(server, timeout=30))
    await wait_until(lambda: len(server.requests) == 1)
    started = time.monotonic()
    await server.stop()
    assert time.monotonic() - started < 1.0
    with pytest.raises(errors.InternalServerError):  # the client sees the connection go away
        await asyncio.wait_for(call, timeout=5)
    assert _fake_handler_tasks() == []


async def test_stop_in_the_middle_of_a_slow_stream_ends_it() -> None:
    server = FakeLLM(chunk_chars=1, chunk_delay_s=0.05)
    await server.start()
    server.reply("x" * 200)
    response = await ask(server, stream=True, timeout=30)
    first = await response.__anext__()
    assert first is not None
    started = time.monotonic()
    await server.stop()
    assert time.monotonic() - started < 1.0
    with pytest.raises(MidStreamFallbackError):
        async for _ in response:
            pass
    assert _fake_handler_tasks() == []
