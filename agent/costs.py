"""What a model call cost: its tokens and their price, recorded after the reply, never before the first token.

Plain data: :class:`ModelCall` is what ``LLMClient`` tells its observers about each call, :class:`PricedCall`
what ``agent.llm.price_calls`` makes of it from litellm's local cost map.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.failures import FailureKind

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
