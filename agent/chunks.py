"""Reading litellm's streamed chunks: text deltas, tool calls that arrive in pieces, usage and the stream's end.

litellm hands back OpenAI-shaped chunks for every provider. A tool call streams as pieces by index (its id and
name first, then its arguments split across chunks); they are joined here once the stream ends.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from agent.costs import Usage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RequestedCall:
    """A tool call as the model streamed it: the arguments are JSON text, assembled from its pieces."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class CallPieces:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


def finish_reason(chunk: Any) -> str | None:
    choices = getattr(chunk, "choices", None) or []
    return getattr(choices[0], "finish_reason", None) if choices else None


_LITELLM_CALLBACK_LISTS = (
    "callbacks",
    "success_callback",
    "_async_success_callback",
    "input_callback",
    "_async_input_callback",
    "service_callback",
)


def nobody_reads_litellm_logging(litellm: ModuleType, response: Any) -> bool:
    """True when litellm's end-of-stream work (logging, cost, cache) has no consumer and can be skipped."""
    if getattr(litellm, "cache", None) is not None:
        return False
    if any(getattr(litellm, name, None) for name in _LITELLM_CALLBACK_LISTS):
        return False
    return getattr(response, "completion_stream", None) is not None and hasattr(response, "aclose")


async def drain_provider_stream(response: Any, *, timeout_s: float) -> Usage | None:
    """Read what the provider sends after the finish (its usage, then the end) and close the stream.

    This is where litellm's stream wrapper would assemble the whole response and run its success logging
    (cost calculation, callbacks): 3-4 ms between the model's last byte and the end of the stream, spent
    for nobody when no callback or cache is configured (:func:`nobody_reads_litellm_logging`). The chunks
    were already translated by litellm up to the finish; only the provider's usage is read from what
    follows, and without it the usage log counts the tokens itself.
    """
    usage: Usage | None = None
    try:
        async with asyncio.timeout(timeout_s):
            async for raw in response.completion_stream:
                usage = raw_usage(raw) or usage
            await response.aclose()
    except Exception as exc:  # the reply is complete; only the usage report is lost
        log.debug("reading the end of the provider stream failed: %r", exc)
    return usage


def raw_usage(raw: Any) -> Usage | None:
    """Token usage from a provider's raw stream chunk (an OpenAI-style object or dict), if it carries one."""
    usage = raw.get("usage") if isinstance(raw, dict) else getattr(raw, "usage", None)
    if not usage:
        return None

    def field_of(name: str) -> int:
        value = usage.get(name) if isinstance(usage, dict) else getattr(usage, name, None)
        return int(value) if isinstance(value, int | float) else 0

    found = Usage(prompt_tokens=field_of("prompt_tokens"), completion_tokens=field_of("completion_tokens"))
    return found if found.prompt_tokens or found.completion_tokens else None


def delta_text(chunk: Any) -> str:
    choices = getattr(chunk, "choices", None) or []
    if not choices:
        return ""
    delta = getattr(choices[0], "delta", None)
    return str(getattr(delta, "content", None) or "")


def collect_call_pieces(chunk: Any, pieces: dict[int, CallPieces]) -> None:
    """Add a chunk's ``delta.tool_calls`` pieces to ``pieces``: by index, else by id, else to the last call."""
    choices = getattr(chunk, "choices", None) or []
    delta = getattr(choices[0], "delta", None) if choices else None
    for part in getattr(delta, "tool_calls", None) or []:
        index = getattr(part, "index", None)
        call_id = getattr(part, "id", None) or ""
        if not isinstance(index, int):
            known = next((i for i, p in pieces.items() if call_id and p.id == call_id), None)
            index = known if known is not None else (len(pieces) if call_id or not pieces else max(pieces))
        call = pieces.setdefault(index, CallPieces())
        call.id = call.id or call_id
        function = getattr(part, "function", None)
        call.name = call.name or str(getattr(function, "name", None) or "")
        arguments = getattr(function, "arguments", None)
        if arguments:
            call.arguments.append(str(arguments))


def assembled_calls(pieces: dict[int, CallPieces]) -> list[RequestedCall]:
    return [
        RequestedCall(id=p.id or f"call_{uuid.uuid4().hex[:24]}", name=p.name, arguments="".join(p.arguments))
        for index, p in sorted(pieces.items())
    ]
