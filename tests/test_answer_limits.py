"""An answer has a length cap: the request's max_tokens, a cut when it loops, and a note saying which stopped it."""

from __future__ import annotations

import pytest

from agent.context import ContextBudget
from agent.llm import LLMClient, LLMConfig, ModelCall
from agent.runaway import LENGTH_NOTE, LOOP_NOTE, MIN_LOOP_CHARS, RepetitionWatch
from agent.session import AgentSession, UserTurn
from agent.summarize import Summarizer
from bots.app import build_llm
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM
from tests.fakes.waiting import wait_until

PARAGRAPH = "The thread's history is kept in the log, and every message is logged once before it is answered. "


def client(fake: FakeLLM, *, max_output_tokens: int = 4096, calls: list[ModelCall] | None = None) -> LLMClient:
    config = LLMConfig(
        model="openai/fake",
        api_base=fake.base_url,
        api_key="sk-test",
        timeout_s=5.0,
        max_output_tokens=max_output_tokens,
    )
    observers = [calls.append] if calls is not None else []
    return LLMClient(config, context_window_fallback=32768, observers=observers)


def session_for(llm: LLMClient) -> AgentSession:
    return AgentSession(llm=llm, summarizer=Summarizer(llm), system_prompt="You are terse.")


async def answer(session: AgentSession, text: str) -> str:
    return "".join([d async for d in session.turn([UserTurn(author="Alice", text=text)])])


def fed(text: str, *, size: int = 4) -> bool:
    """Whether the watch cuts ``text`` streamed in deltas of ``size`` characters."""
    watch = RepetitionWatch()
    return any(watch.loops(text[i : i + size]) for i in range(0, len(text), size))


async def test_an_answer_request_carries_llm_max_output_tokens_and_the_budget_reserves_it(fake_llm: FakeLLM) -> None:
    fake_llm.reply("Short.")
    llm = client(fake_llm, max_output_tokens=700)
    assert await answer(session_for(llm), "hi") == "Short."
    assert fake_llm.requests[0].max_tokens == 700
    budget = await llm.budget()
    assert budget.output_tokens == 700
    assert budget.input_limit == int(32768 * 0.9) - 700


def test_a_small_window_caps_the_answer_at_a_quarter_of_it() -> None:
    assert ContextBudget(window=8192, max_output=4096).output_tokens == 2048
    assert ContextBudget(window=200_000, max_output=4096).input_limit == 180_000 - 4096


async def test_a_looping_answer_is_cut_with_a_note_and_the_model_stream_closed(fake_llm: FakeLLM) -> None:
    fake_llm.reply_looping("Here is how it works. ", span=PARAGRAPH)  # loops until the client leaves
    calls: list[ModelCall] = []
    session = session_for(client(fake_llm, calls=calls))

    shown = await answer(session, "How is history kept?")

    assert shown.endswith("\n\n" + LOOP_NOTE)
    assert shown.startswith("Here is how it works. " + PARAGRAPH)
    assert len(shown) < MIN_LOOP_CHARS + 3 * len(PARAGRAPH)
    request = fake_llm.requests[0]
    await wait_until(lambda: request.client_gone, what="the fake model to see the client leave")
    assert request.sent_chars < 200_000  # it stopped sending long before the runaway's end
    assert session.last_reply == shown  # what the router logs
    assert session.messages[-1] == {"role": "assistant", "content": shown.strip()}  # what the history keeps
    assert len(calls) == 1 and calls[0].reply == shown.removesuffix("\n\n" + LOOP_NOTE)  # charged for what it wrote


async def test_an_answer_stopped_by_its_token_limit_ends_with_a_true_note(fake_llm: FakeLLM) -> None:
    fake_llm.enforce_max_tokens = True
    fake_llm.reply("word " * 400)
    shown = await answer(session_for(client(fake_llm, max_output_tokens=50)), "Say it all.")
    assert fake_llm.requests[0].max_tokens == 50
    assert shown == ("word " * 40) + "\n\n" + LENGTH_NOTE.format(tokens=50)


def test_a_loop_of_a_paragraph_or_of_a_short_phrase_is_cut() -> None:
    assert fed("Intro.\n" + PARAGRAPH * 20)
    assert fed("Sorry, I cannot do that. " * 80)
    assert fed("ha" * 1000)


@pytest.mark.parametrize(
    "text",
    [
        "| # | file | size |\n|---|---|---|\n"
        + "".join(f"| {i} | report-{i}.pdf | {i * 3} KB |\n" for i in range(300)),
        "".join(f"{i}. Read the next file in the folder and write its summary.\n" for i in range(1, 200)),
        "def test():\n" + "    assert client.get('/health').status == 200\n" * 25 + "    return None\n",
        "```\n" + "=" * 80 + "\n" + "data = [0, 0, 0, 0, 0, 0, 0, 0]\n" * 20 + "```\n",
    ],
    ids=["long markdown table", "numbered list", "repeated code lines", "repeated short data lines"],
)
def test_legitimately_repetitive_text_is_not_cut(text: str) -> None:
    assert not fed(text)
    assert not fed(text, size=1)


def test_llm_max_output_tokens_defaults_to_4096_and_reaches_the_client(make_settings: MakeSettings) -> None:
    assert build_llm(make_settings()).config.max_output_tokens == 4096
    assert build_llm(make_settings(llm_max_output_tokens=900)).config.max_output_tokens == 900
