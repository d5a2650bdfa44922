"""What a model call cost: its tokens and their price, recorded after the reply, never before the first token.

:class:`ModelCall` is what ``LLMClient`` tells its observers about each call, :class:`PricedCall` what
:func:`price_calls` makes of it from litellm's local cost map, later, on a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from agent.failures import FailureKind
from agent.litellm_import import litellm_module

Message = dict[str, Any]


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ModelCall:
    """One finished call, retries included, as observers (metrics, the usage log) see it.

    ``usage`` is what the provider reported (empty when it reported nothing or the call failed);
    ``request`` and ``reply`` let an observer count tokens itself, later, off the answering path.
    """

    model: str
    streamed: bool
    seconds: float
    first_token_s: float | None
    usage: Usage
    failure: FailureKind | None
    request: list[Message] = field(repr=False)
    reply: str = field(repr=False)


CallObserver = Callable[[ModelCall], None]


@dataclass(frozen=True, slots=True)
class PricedCall:
    """A call's tokens (as reported, else counted here) and its cost from litellm's local cost map."""

    prompt_tokens: int
    completion_tokens: int
    tokens_counted: bool
    cost_usd: float | None  # None when the cost map does not know the model


async def price_calls(calls: Sequence[ModelCall]) -> list[PricedCall]:
    """Price finished calls on a worker thread: never on the way to a first token, never on the event loop."""
    litellm = await litellm_module()
    return await asyncio.to_thread(lambda: [_price(litellm, call) for call in calls])


def _price(litellm: ModuleType, call: ModelCall) -> PricedCall:
    prompt, completion, counted = call.usage.prompt_tokens, call.usage.completion_tokens, False
    if not (prompt or completion):
        prompt = int(litellm.token_counter(model=call.model, messages=call.request))
        completion = int(litellm.token_counter(model=call.model, text=call.reply)) if call.reply else 0
        counted = True
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=call.model, prompt_tokens=prompt, completion_tokens=completion
        )
        cost: float | None = float(prompt_cost) + float(completion_cost)
    except Exception:
        cost = None
    return PricedCall(prompt_tokens=prompt, completion_tokens=completion, tokens_counted=counted, cost_usd=cost)
