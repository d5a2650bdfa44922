"""Honest failures: permanent model errors are tried once and say what is wrong; transient ones are retried.

Every case goes through the real litellm and openai SDK to the loopback model (or, for a missing key, stops in
the SDK before any request, as it does for a newcomer with no OPENAI_API_KEY).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent.llm import FailureKind, LLMClient, LLMConfig, LLMError
from bots.seam.messages import CardAction
from bots.seam.ports import CardState
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM
from tests.router_harness import running_router, thread_key

HI = [{"role": "user", "content": "hi"}]


def client(fake: FakeLLM, *, api_key: str | None = "sk-test", model: str = "openai/fake") -> LLMClient:
    config = LLMConfig(
        model=model, api_base=fake.base_url, api_key=api_key, timeout_s=5.0, backoff_base_s=0.01, backoff_max_s=0.02
    )
    return LLMClient(config, context_window_fallback=8192)


async def failure_of(llm: LLMClient, *, stream: bool = True) -> LLMError:
    with pytest.raises(LLMError) as caught:
        if stream:
            _ = [d async for d in llm.stream(HI)]
        else:
            await llm.complete(HI)
    return caught.value


@pytest.fixture
def no_provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_ADMIN_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_provider_keys")
async def test_a_missing_key_is_not_retried_and_the_log_names_the_variable(
    fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="agent.llm"):
        error = await failure_of(client(fake_llm, api_key=None))
    assert error.kind is FailureKind.AUTH
    assert error.user_message == (
        "I can't use my model right now: its API key is missing or invalid. "
        "The bot's operator can see the details in its log."
    )
    assert fake_llm.requests == []  # the SDK refuses before sending anything
    assert not [r for r in caplog.records if "retry" in r.getMessage()]
    [logged] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "openai/fake" in logged and "LLM_API_KEY" in logged and "OPENAI_API_KEY" in logged


async def test_a_wrong_key_is_tried_once_and_blames_llm_api_key(
    fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    fake_llm.fail_always(401)
    with caplog.at_level(logging.ERROR, logger="agent.llm"):
        error = await failure_of(client(fake_llm))
    assert error.kind is FailureKind.AUTH and "API key is missing or invalid" in error.user_message
    assert len(fake_llm.requests) == 1
    assert "LLM_API_KEY is set but the provider rejected it" in caplog.text
    assert "sk-test" not in caplog.text


async def test_an_unknown_model_is_tried_once_and_the_log_names_llm_model(
    fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    fake_llm.fail_always(404)
    with caplog.at_level(logging.ERROR, logger="agent.llm"):
        error = await failure_of(client(fake_llm, model="openai/no-such-model"), stream=False)
    assert error.kind is FailureKind.NOT_FOUND
    assert "does not know the model" in error.user_message
    assert len(fake_llm.requests) == 1
    assert "LLM_MODEL=openai/no-such-model" in caplog.text


async def test_a_model_string_without_a_provider_is_an_unknown_model_not_a_retry(fake_llm: FakeLLM) -> None:
    error = await failure_of(client(fake_llm, model="nosuchprovider/model"))
    assert error.kind is FailureKind.NOT_FOUND
    assert fake_llm.requests == []


async def test_a_forbidden_model_is_tried_once(fake_llm: FakeLLM) -> None:
    fake_llm.fail_always(403)
    error = await failure_of(client(fake_llm))
    assert error.kind is FailureKind.PERMISSION
    assert len(fake_llm.requests) == 1


async def test_a_request_over_the_window_is_tried_once_and_points_at_llm_context_window(
    fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    fake_llm.max_context_tokens = 3
    with caplog.at_level(logging.ERROR, logger="agent.llm"):
        error = await failure_of(client(fake_llm))
    assert error.kind is FailureKind.CONTEXT_WINDOW
    assert "more than my model can read at once" in error.user_message
    assert len(fake_llm.requests) == 1
    assert "LLM_CONTEXT_WINDOW" in caplog.text


@pytest.mark.parametrize(("status", "kind"), [(503, FailureKind.UNAVAILABLE), (429, FailureKind.RATE_LIMIT)])
async def test_a_transient_failure_is_retried_within_bounds(fake_llm: FakeLLM, status: int, kind: FailureKind) -> None:
    fake_llm.fail_always(status)
    error = await failure_of(client(fake_llm))
    assert error.kind is kind
    assert len(fake_llm.requests) == 3


async def test_a_401_is_tried_once_where_a_503_then_success_is_retried(fake_llm: FakeLLM) -> None:
    fake_llm.fail(503)
    fake_llm.reply("recovered")
    assert "".join([d async for d in client(fake_llm).stream(HI)]) == "recovered"
    assert [r.status for r in fake_llm.requests] == [503, 200]
    fake_llm.fail(401)
    fake_llm.reply("never sent")
    error = await failure_of(client(fake_llm))
    assert error.kind is FailureKind.AUTH
    assert [r.status for r in fake_llm.requests] == [503, 200, 401]


async def test_a_rejected_key_tells_the_thread_the_truth(make_settings: MakeSettings, fake_llm: FakeLLM) -> None:
    fake_llm.fail_always(401)
    async with running_router(make_settings()) as bot:
        await bot.say("Hello?")
    assert [text for _, text in bot.outbox.notices] == [
        "I can't use my model right now: its API key is missing or invalid. "
        "The bot's operator can see the details in its log."
    ]
    assert len(fake_llm.requests) == 1


async def test_catch_up_with_a_rejected_key_says_so_on_the_card(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with running_router(make_settings()) as bot:
        await bot.say("The budget is 10k.")
    async with running_router(make_settings()) as bot:
        await bot.say("What's the budget?")
        fake_llm.fail_always(401)
        await bot.click(CardAction.CATCH_UP)
        card = bot.outbox.card_updates[-1][1]
        assert card.state is CardState.PENDING and card.buttons_live
        assert card.note == (
            "I couldn't summarize the thread. I can't use my model right now: its API key is missing or invalid. "
            "The bot's operator can see the details in its log."
        )
        assert bot.outbox.replies_in(thread_key()) == []
