"""The agent package against the fake model over HTTP: retries, streaming, compaction, summaries."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent.llm import LLMClient, LLMConfig, LLMError
from agent.session import AgentSession, UserTurn
from agent.summarize import Purpose, Summarizer
from tests.fakes.llm import FakeLLM


def client(fake: FakeLLM, *, window: int = 8192, timeout_s: float = 5.0) -> LLMClient:
    config = LLMConfig(
        model="openai/fake",
        api_base=fake.base_url,
        api_key="sk-test",
        timeout_s=timeout_s,
        backoff_base_s=0.05,
        backoff_max_s=0.2,
    )
    return LLMClient(config, context_window_fallback=window)


async def collect(session: AgentSession, text: str, author: str = "Alice") -> str:
    return "".join([d async for d in session.turn([UserTurn(author=author, text=text)])])


async def test_streamed_reply_arrives_in_several_deltas_with_usage(fake_llm: FakeLLM) -> None:
    fake_llm.reply("The quick brown fox jumps over the lazy dog.")
    llm = client(fake_llm)
    deltas = [d async for d in llm.stream([{"role": "user", "content": "hi"}])]
    assert "".join(deltas) == "The quick brown fox jumps over the lazy dog."
    assert len(deltas) > 2
    assert llm.last_usage.completion_tokens > 0


async def test_429_with_retry_after_is_retried_after_the_requested_delay(fake_llm: FakeLLM) -> None:
    fake_llm.fail(status=429, retry_after=1.0)
    fake_llm.reply("ok")
    started = time.monotonic()
    assert await client(fake_llm).complete([{"role": "user", "content": "hi"}]) == "ok"
    assert time.monotonic() - started >= 1.0
    assert len(fake_llm.requests) == 2


async def test_a_model_that_stays_down_is_tried_three_times_then_a_typed_error(fake_llm: FakeLLM) -> None:
    fake_llm.fail_always(status=503)
    with pytest.raises(LLMError) as caught:
        _ = [d async for d in client(fake_llm).stream([{"role": "user", "content": "hi"}])]
    assert caught.value.user_message == "I couldn't reach the model. Try again in a minute."
    assert len(fake_llm.requests) == 3


async def test_a_hang_past_the_timeout_is_retried(fake_llm: FakeLLM) -> None:
    fake_llm.hang(10)
    fake_llm.reply("after the hang")
    started = time.monotonic()
    text = "".join([d async for d in client(fake_llm, timeout_s=0.5).stream([{"role": "user", "content": "x"}])])
    assert text == "after the hang"
    assert time.monotonic() - started < 5
    assert len(fake_llm.requests) == 2


async def test_a_stream_cut_in_half_is_an_error_not_a_silent_partial_reply(fake_llm: FakeLLM) -> None:
    fake_llm.break_stream(after_chars=10)
    session = AgentSession(llm=client(fake_llm), summarizer=Summarizer(client(fake_llm)), system_prompt="Be brief.")
    with pytest.raises(LLMError):
        await collect(session, "tell me a story")
    assert len(fake_llm.requests) == 1
    assert [m["role"] for m in session.messages] == ["system"]  # the failed turn left no trace


async def test_bad_credentials_are_not_retried(fake_llm: FakeLLM) -> None:
    fake_llm.fail(status=401)
    with pytest.raises(LLMError) as caught:
        await client(fake_llm).complete([{"role": "user", "content": "hi"}])
    assert "API key is missing or invalid" in caught.value.user_message
    assert len(fake_llm.requests) == 1


async def test_long_session_compacts_and_keeps_first_message_summary_and_tail(fake_llm: FakeLLM) -> None:
    window = 800
    fake_llm.max_context_tokens = window
    llm = client(fake_llm, window=window)
    session = AgentSession(llm=llm, summarizer=Summarizer(llm), system_prompt="Be brief.")
    await collect(session, "Project codename is HERON.")
    for i in range(25):
        await collect(session, f"Update {i}: " + "progress on the migration continues as planned " * 3)
    assert fake_llm.max_seen_tokens is not None and fake_llm.max_seen_tokens <= window
    compactions = [r for r in fake_llm.requests if not r.stream]
    assert compactions and "compress the middle" in compactions[0].prompt_text
    last = fake_llm.requests[-1].body["messages"]
    assert last[1]["content"] == "Alice: Project codename is HERON."
    assert "<earlier_in_this_session>" in last[0]["content"]
    assert last[-1]["content"].startswith("Alice: Update 24:")


async def test_a_single_oversized_message_is_truncated_with_a_visible_marker(fake_llm: FakeLLM) -> None:
    window = 1000
    fake_llm.max_context_tokens = window
    llm = client(fake_llm, window=window)
    session = AgentSession(llm=llm, summarizer=Summarizer(llm), system_prompt="Be brief.")
    await collect(session, "word " * 5000)
    sent = fake_llm.requests[-1].body["messages"][-1]["content"]
    assert "truncated:" in sent and "characters omitted" in sent
    assert fake_llm.max_seen_tokens is not None and fake_llm.max_seen_tokens <= window


async def test_an_empty_summary_is_a_failure(fake_llm: FakeLLM) -> None:
    fake_llm.reply("   ")
    with pytest.raises(LLMError):
        await Summarizer(client(fake_llm)).summarize(lines=["Alice: hi"], purpose=Purpose.CATCH_UP)


async def test_a_message_forgotten_while_compaction_summarizes_it_is_in_no_summary_or_later_request(
    fake_llm: FakeLLM,
) -> None:
    window = 800
    fake_llm.max_context_tokens = window
    fake_llm.latency_s = 0.1  # every request is held a moment, so the forget lands while one is out

    def answer(body: dict[str, object]) -> str:
        if body.get("stream"):
            return "ok"
        return "SUMMARY: " + ("the ZEBRA note and updates" if "ZEBRA" in str(body) else "updates")

    fake_llm.reply_with(answer)
    llm = client(fake_llm, window=window)
    session = AgentSession(llm=llm, summarizer=Summarizer(llm), system_prompt="Be brief.")
    await collect(session, "Project codename is HERON.")
    forgotten_at: int | None = None
    for i in range(16):
        text = f"Update {i}: " + ("secret ZEBRA " if i == 0 else "") + "progress continues as planned " * 12
        task = asyncio.ensure_future(collect_turn(session, UserTurn(author="Alice", text=text, message_id=i + 2)))
        while not task.done():
            compacting = [r for r in fake_llm.requests if not r.stream and "ZEBRA" in r.prompt_text]
            if compacting and forgotten_at is None:
                session.forget(message_id=2)  # the ZEBRA message, deleted while its compaction is out
                forgotten_at = len(fake_llm.requests)
            await asyncio.sleep(0.005)
        await task
    assert forgotten_at is not None, "compaction never summarized the message"
    later = fake_llm.requests[forgotten_at:]
    assert later and all("ZEBRA" not in r.prompt_text for r in later)
    assert any(not r.stream for r in later)  # the compaction was planned and summarized again
    assert session.compaction_summary is not None and "ZEBRA" not in session.compaction_summary
    assert fake_llm.max_seen_tokens is not None and fake_llm.max_seen_tokens <= window


async def collect_turn(session: AgentSession, turn: UserTurn) -> str:
    return "".join([d async for d in session.turn([turn])])
