"""The one LLM client: litellm, streamed, retried within bounds, with a typed error at the end.

litellm speaks to every provider (OpenAI, Anthropic, a local Ollama, any OpenAI-compatible server), so this
module stays small: it owns retries (litellm's and the openai SDK's own are switched off so a failing request is
tried exactly ``max_tries`` times), honours ``Retry-After``, and turns every failure into :class:`LLMError`,
which the router shows as a short friendly sentence while the log keeps the detail.

Importing litellm takes seconds. :func:`preload_litellm` starts that import on a worker thread at start-up, so
the gateway or socket connects meanwhile; the first LLM call awaits it. Nothing imports litellm on the event
loop. ``LITELLM_LOCAL_MODEL_COST_MAP`` is set before the import so litellm never fetches its cost map.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import logging
import os
import random
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

log = logging.getLogger(__name__)

Message = dict[str, Any]

_import_lock = threading.Lock()
_import_future: concurrent.futures.Future[ModuleType] | None = None


def _import_litellm() -> ModuleType:
    module = importlib.import_module("litellm")
    setattr(module, "suppress_debug_info", True)  # noqa: B010 - litellm's module-level switches
    setattr(module, "drop_params", True)  # noqa: B010
    # Histories with tool calls: pair every call with a result and fill empty contents where a provider
    # (Anthropic, Bedrock) would refuse them.
    setattr(module, "modify_params", True)  # noqa: B010
    logging.getLogger("LiteLLM").setLevel(logging.WARNING)
    return module


def preload_litellm() -> concurrent.futures.Future[ModuleType]:
    """Start importing litellm on a daemon thread (once); return the future of the module."""
    global _import_future
    with _import_lock:
        if _import_future is None:
            future: concurrent.futures.Future[ModuleType] = concurrent.futures.Future()

            def run() -> None:
                try:
                    future.set_result(_import_litellm())
                except BaseException as exc:
                    future.set_exception(exc)

            threading.Thread(target=run, name="litellm-import", daemon=True).start()
            _import_future = future
        return _import_future


async def litellm_module() -> ModuleType:
    """The litellm module, awaiting the background import if it is still running."""
    return await asyncio.wrap_future(preload_litellm())


class LLMError(Exception):
    """The model could not answer. ``user_message`` is safe to show; the exception text is for the log."""

    def __init__(self, reason: str, *, user_message: str | None = None) -> None:
        super().__init__(reason)
        self.user_message = user_message or "I couldn't reach the model. Try again in a minute."


@dataclass(frozen=True, slots=True)
class LLMConfig:
    model: str
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 60.0
    max_tries: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    retry_after_max_s: float = 30.0
    function_calling: bool | None = None  # None: litellm's model info decides


@dataclass(frozen=True, slots=True)
class RequestedCall:
    """A tool call as the model streamed it: the arguments are JSON text, assembled from its pieces."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class _CallPieces:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _retry_after_s(exc: BaseException) -> float | None:
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get("retry-after") or headers.get("Retry-After")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError):
        return True
    name = type(exc).__name__
    if name in {"Timeout", "APIConnectionError", "APITimeoutError", "ServiceUnavailableError", "BadGatewayError"}:
        return True
    status = _status_of(exc)
    return status in RETRYABLE_STATUS


class LLMClient:
    """Chat completions through litellm for one configured model."""

    def __init__(self, config: LLMConfig, *, context_window_fallback: int) -> None:
        self.config = config
        self.context_window_fallback = context_window_fallback
        self.last_usage = Usage()
        self._max_input_tokens: int | None = None
        self._supports_tools: bool | None = None

    @property
    def model(self) -> str:
        return self.config.model

    async def max_input_tokens(self) -> int:
        """The model's input window from litellm's model map, else the configured fallback."""
        if self._max_input_tokens is None:
            litellm = await litellm_module()

            def lookup() -> Any:
                try:
                    info = litellm.get_model_info(self.config.model)
                    return info.get("max_input_tokens") or info.get("max_tokens")
                except Exception:
                    return None

            # An unknown model makes litellm try several lookups; keep them off the event loop.
            known = await asyncio.to_thread(lookup)
            self._max_input_tokens = int(known) if known else self.context_window_fallback
        return self._max_input_tokens

    async def text_counter(self) -> Callable[[str], int]:
        """A synchronous token counter for this model (litellm's, tiktoken-backed for unknown models)."""
        litellm = await litellm_module()
        model = self.config.model

        def count(text: str) -> int:
            return int(litellm.token_counter(model=model, text=text))

        return count

    async def supports_tools(self) -> bool:
        """Whether the model can call functions: the config's say, else litellm's model info (unknown: no)."""
        if self.config.function_calling is not None:
            return self.config.function_calling
        if self._supports_tools is None:
            litellm = await litellm_module()

            def lookup() -> bool:
                try:
                    return bool(litellm.supports_function_calling(model=self.config.model))
                except Exception:
                    return False

            self._supports_tools = await asyncio.to_thread(lookup)
        return self._supports_tools

    def _request_args(self, messages: list[Message], *, stream: bool, max_tokens: int | None) -> dict[str, Any]:
        args: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "stream": stream,
            "timeout": self.config.timeout_s,
            "max_retries": 0,
            "num_retries": 0,
        }
        if stream:
            args["stream_options"] = {"include_usage": True}
        if self.config.api_base:
            args["api_base"] = self.config.api_base
        if self.config.api_key:
            args["api_key"] = self.config.api_key
        if max_tokens:
            args["max_tokens"] = max_tokens
        return args

    async def _backoff(self, attempt: int, exc: BaseException) -> None:
        delay = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (attempt - 1))
        delay = random.uniform(delay / 2, delay)
        retry_after = _retry_after_s(exc)
        if retry_after is not None:
            delay = min(max(delay, retry_after), self.config.retry_after_max_s)
        log.warning(
            "LLM request failed (%s, status %s); retry %d/%d in %.2fs",
            type(exc).__name__,
            _status_of(exc),
            attempt,
            self.config.max_tries - 1,
            delay,
        )
        await asyncio.sleep(delay)

    def _give_up(self, exc: BaseException) -> LLMError:
        status = _status_of(exc)
        reason = f"{type(exc).__name__} (status {status}): {str(exc)[:300]}"
        log.error("LLM request to %s failed for good: %s", self.config.model, reason)
        if status in (401, 403):
            return LLMError(reason, user_message="I can't use the model right now: it refused my credentials.")
        if status == 429:
            return LLMError(reason, user_message="The model is busy right now. Try again in a minute.")
        return LLMError(reason)

    async def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        tools: list[dict[str, Any]] | None = None,
        calls: list[RequestedCall] | None = None,
    ) -> AsyncIterator[str]:
        """Yield text deltas of one completion; retry only while nothing has been yielded yet.

        With ``tools`` (OpenAI-format definitions) the model may also ask for tool calls: they arrive in pieces
        (by index, the arguments split across chunks) and are appended, whole, to ``calls`` when the stream ends.
        """
        litellm = await litellm_module()
        self.last_usage = Usage()
        for attempt in range(1, self.config.max_tries + 1):
            yielded = False
            pieces: dict[int, _CallPieces] = {}
            try:
                args = self._request_args(messages, stream=True, max_tokens=max_tokens)
                if tools:
                    args["tools"] = tools
                response = await litellm.acompletion(**args)
                iterator = response.__aiter__()
                while True:
                    try:
                        chunk = await asyncio.wait_for(iterator.__anext__(), timeout=self.config.timeout_s)
                    except StopAsyncIteration:
                        break
                    self._note_usage(chunk)
                    _collect_call_pieces(chunk, pieces)
                    delta = _delta_text(chunk)
                    if delta:
                        yielded = True
                        yield delta
                if calls is not None:
                    calls.extend(_assembled(pieces))
                return
            except LLMError:
                raise
            except Exception as exc:
                if yielded or attempt == self.config.max_tries or not _is_retryable(exc):
                    raise self._give_up(exc) from exc
                await self._backoff(attempt, exc)

    async def complete(self, messages: list[Message], *, max_tokens: int | None = None) -> str:
        """One non-streamed completion's text (used for summaries)."""
        litellm = await litellm_module()
        for attempt in range(1, self.config.max_tries + 1):
            try:
                response = await litellm.acompletion(
                    **self._request_args(messages, stream=False, max_tokens=max_tokens)
                )
                self._note_usage(response)
                return str(response.choices[0].message.content or "")
            except Exception as exc:
                if attempt == self.config.max_tries or not _is_retryable(exc):
                    raise self._give_up(exc) from exc
                await self._backoff(attempt, exc)
        raise AssertionError("unreachable")

    def _note_usage(self, response: Any) -> None:
        usage = getattr(response, "usage", None)
        if usage:
            self.last_usage = Usage(
                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            )


def _delta_text(chunk: Any) -> str:
    choices = getattr(chunk, "choices", None) or []
    if not choices:
        return ""
    delta = getattr(choices[0], "delta", None)
    return str(getattr(delta, "content", None) or "")


def _collect_call_pieces(chunk: Any, pieces: dict[int, _CallPieces]) -> None:
    """Add a chunk's ``delta.tool_calls`` pieces to ``pieces``: by index, else by id, else to the last call."""
    choices = getattr(chunk, "choices", None) or []
    delta = getattr(choices[0], "delta", None) if choices else None
    for part in getattr(delta, "tool_calls", None) or []:
        index = getattr(part, "index", None)
        call_id = getattr(part, "id", None) or ""
        if not isinstance(index, int):
            known = next((i for i, p in pieces.items() if call_id and p.id == call_id), None)
            index = known if known is not None else (len(pieces) if call_id or not pieces else max(pieces))
        call = pieces.setdefault(index, _CallPieces())
        call.id = call.id or call_id
        function = getattr(part, "function", None)
        call.name = call.name or str(getattr(function, "name", None) or "")
        arguments = getattr(function, "arguments", None)
        if arguments:
            call.arguments.append(str(arguments))


def _assembled(pieces: dict[int, _CallPieces]) -> list[RequestedCall]:
    return [
        RequestedCall(id=p.id or f"call_{uuid.uuid4().hex[:24]}", name=p.name, arguments="".join(p.arguments))
        for index, p in sorted(pieces.items())
    ]
