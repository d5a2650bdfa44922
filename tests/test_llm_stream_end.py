"""The end of a stream: with nobody reading litellm's logging the client reads the provider's tail itself.

Either way the reply, the usage and the connection come out the same; with a litellm callback configured,
litellm's own end-of-stream path (success logging, cost) runs as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agent.llm import FailureKind, LLMClient, LLMConfig, LLMError, litellm_module
from tests.fakes.llm import FakeLLM

HI = [{"role": "user", "content": "hello there"}]


def client(fake: FakeLLM) -> LLMClient:
    return LLMClient(
        LLMConfig(model="openai/fake", api_base=fake.base_url, api_key="sk-test"), context_window_fallback=8192
    )


async def test_the_reply_and_the_provider_usage_survive_skipping_litellm_end_of_stream_work(fake_llm: FakeLLM) -> None:
    llm = client(fake_llm)
    for i in range(3):  # three in a row: each stream is read to its end and closed
        fake_llm.reply(f"Reply number {i}, in a few chunks of text.")
        text = "".join([d async for d in llm.stream(HI)])
        assert text == f"Reply number {i}, in a few chunks of text."
        assert llm.last_usage.prompt_tokens == len("hello there") // 4 + 1  # as the fake reported them
        assert llm.last_usage.completion_tokens == len(text) // 4 + 1


async def test_a_litellm_callback_still_sees_every_success(fake_llm: FakeLLM) -> None:
    litellm = await litellm_module()
    from litellm.integrations.custom_logger import CustomLogger

    seen: list[Any] = []
    logged = asyncio.Event()

    class Recorder(CustomLogger):  # type: ignore[misc]
        async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
            seen.append(response_obj)
            logged.set()

    recorder = Recorder()
    litellm.callbacks.append(recorder)
    try:
        fake_llm.reply("Logged by litellm.")
        text = "".join([d async for d in client(fake_llm).stream(HI)])
        await asyncio.wait_for(logged.wait(), timeout=5)
    finally:
        litellm.callbacks.remove(recorder)
    assert text == "Logged by litellm."
    assert len(seen) == 1 and seen[0].choices[0].message.content == "Logged by litellm."


async def test_a_stream_that_stalls_after_its_first_words_fails_as_a_timeout_without_a_retry(
    fake_llm: FakeLLM,
) -> None:
    fake_llm.chunk_chars, fake_llm.chunk_delay_s = 4, 1.0
    fake_llm.reply("first words, then a long silence")
    config = LLMConfig(model="openai/fake", api_base=fake_llm.base_url, api_key="sk-test", timeout_s=0.3)
    received: list[str] = []
    with pytest.raises(LLMError) as caught:
        async for delta in LLMClient(config, context_window_fallback=8192).stream(HI):
            received.append(delta)
    assert caught.value.kind is FailureKind.TIMEOUT
    assert "".join(received) == "firs"
    assert len(fake_llm.requests) == 1
