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
import dataclasses
import importlib
import logging
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from agent.chunks import (
    RequestedCall,
    _assembled,
    _CallPieces,
    _collect_call_pieces,
    _delta_text,
    _finish_reason,
    _nobody_reads_litellm_logging,
    _raw_usage,
)
from agent.costs import CallObserver, Message, ModelCall, PricedCall, Usage
from agent.failures import (
    FailureKind,
    LLMError,
    classify,
    is_retryable,
    missing_key_names,
    retry_after_s,
    status_of,
)

log = logging.getLogger(__name__)

__all__ = [
    "CallObserver",
    "FailureKind",
    "LLMClient",
    "LLMConfig",
    "LLMError",
    "Message",
    "ModelCall",
    "PricedCall",
    "RequestedCall",
    "Usage",
    "classify",
    "litellm_module",
    "preload_litellm",
    "price_calls",
]


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


class LLMClient:
    """Chat completions through litellm for one configured model."""

    def __init__(
        self, config: LLMConfig, *, context_window_fallback: int, observers: Sequence[CallObserver] = ()
    ) -> None:
        self.config = config
        self.context_window_fallback = context_window_fallback
        self._observers = list(observers)
        self.last_usage = Usage()
        self._max_input_tokens: int | None = None
        self._supports_tools: bool | None = None

    @property
    def model(self) -> str:
        return self.config.model

    def with_model(self, model: str) -> LLMClient:
        """A client for ``model`` with everything else as this one has it (a thread's own choice of model)."""
        if model == self.config.model:
            return self
        return LLMClient(
            dataclasses.replace(self.config, model=model),
            context_window_fallback=self.context_window_fallback,
            observers=self._observers,
        )

    async def max_input_tokens(self) -> int:
        """The model's input window from litellm's model map, else the configured fallback."""
        if self._max_input_tokens is None:
            known = await self.known_window()
            self._max_input_tokens = known or self.context_window_fallback
        return self._max_input_tokens

    async def known_window(self) -> int | None:
        """The input window litellm's model map gives for this model, or None when it does not know it."""
        litellm = await litellm_module()

        def lookup() -> Any:
            try:
                info = litellm.get_model_info(self.config.model)
                return info.get("max_input_tokens") or info.get("max_tokens")
            except Exception:
                return None

        # An unknown model makes litellm try several lookups; keep them off the event loop.
        known = await asyncio.to_thread(lookup)
        return int(known) if known else None

    async def setup_problem(self) -> tuple[FailureKind, str] | None:
        """What stops this model from working before any request is sent: no provider, or no key.

        Returns the failure kind and the operator's fix; None when litellm has what it needs.
        """
        litellm = await litellm_module()
        try:
            litellm.get_llm_provider(self.config.model)
        except Exception:
            return FailureKind.NOT_FOUND, (
                f"LLM_MODEL={self.config.model} names no provider litellm knows: write it as provider/model, "
                "such as openai/gpt-4o-mini, anthropic/claude-3-5-haiku-latest or ollama/llama3.1"
            )
        names = missing_key_names(
            litellm, model=self.config.model, api_key=self.config.api_key, api_base=self.config.api_base
        )
        if names:
            return FailureKind.AUTH, f"no key for {self.config.model}: set LLM_API_KEY, or {' / '.join(names)}"
        return None

    async def fix(self, kind: FailureKind) -> str:
        """:meth:`fix_for` once litellm is loaded."""
        return self.fix_for(kind, await litellm_module())

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
        retry_after = retry_after_s(exc)
        if retry_after is not None:
            delay = min(max(delay, retry_after), self.config.retry_after_max_s)
        log.warning(
            "LLM request failed (%s, status %s); retry %d/%d in %.2fs",
            type(exc).__name__,
            status_of(exc),
            attempt,
            self.config.max_tries - 1,
            delay,
        )
        await asyncio.sleep(delay)

    def _give_up(self, exc: BaseException, litellm: ModuleType) -> LLMError:
        kind = classify(exc)
        status = status_of(exc)
        reason = f"{kind.value}: {type(exc).__name__} (status {status}): {str(exc)[:300]}"
        log.error(
            "LLM request to %s failed for good (%s). Fix: %s", self.config.model, reason, self.fix_for(kind, litellm)
        )
        return LLMError(reason, kind=kind)

    def fix_for(self, kind: FailureKind, litellm: ModuleType) -> str:
        """What the operator should change, naming the variable and the model."""
        model, base = self.config.model, self.config.api_base
        where = f" at LLM_API_BASE={base}" if base else ""
        fixes = {
            FailureKind.AUTH: lambda: self._credential_fix(litellm),
            FailureKind.PERMISSION: lambda: (
                f"the key is valid but may not use {model}{where}: use a key (or project) with access to it, "
                "or set LLM_MODEL to a model this key may use"
            ),
            FailureKind.NOT_FOUND: lambda: (
                f"the provider{where} does not know LLM_MODEL={model}: set LLM_MODEL to a litellm model string it "
                "serves, such as openai/gpt-4o-mini or anthropic/claude-3-5-haiku-latest"
            ),
            FailureKind.BAD_REQUEST: lambda: (
                f"the provider{where} rejected the request as invalid: check that LLM_MODEL={model} and "
                "LLM_API_BASE belong together"
            ),
            FailureKind.CONTEXT_WINDOW: lambda: (
                f"the request was larger than {model}'s window: set LLM_CONTEXT_WINDOW to its real window in "
                f"tokens (now {self.context_window_fallback}, used when litellm does not know the model)"
            ),
            FailureKind.RATE_LIMIT: lambda: f"the provider rate-limits {model}: raise the account's limits or wait",
            FailureKind.TIMEOUT: lambda: (
                f"no answer within LLM_TIMEOUT_S={self.config.timeout_s:g}s: check the provider{where}, or raise it"
            ),
            FailureKind.UNAVAILABLE: lambda: (
                f"the model server{where or ' (the provider default)'} could not be reached or failed: check "
                "LLM_API_BASE and the provider's status"
            ),
            FailureKind.EMPTY: lambda: f"{model} answered with no text: try again, or choose another LLM_MODEL",
        }
        return fixes[kind]()

    def _credential_fix(self, litellm: ModuleType) -> str:
        model = self.config.model
        if self.config.api_key:
            return f"LLM_API_KEY is set but the provider rejected it: set it to a valid key for {model}"
        names = missing_key_names(litellm, model=model, api_base=self.config.api_base)
        if names:
            return f"no key for {model}: set LLM_API_KEY, or {' / '.join(names)}"
        return f"the provider key in the environment was rejected for {model}: replace it, or set LLM_API_KEY"

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
        started = time.monotonic()
        first_token_s: float | None = None
        reply: list[str] = []
        usage = Usage()
        for attempt in range(1, self.config.max_tries + 1):
            pieces: dict[int, _CallPieces] = {}
            try:
                args = self._request_args(messages, stream=True, max_tokens=max_tokens)
                if tools:
                    args["tools"] = tools
                response = await litellm.acompletion(**args)
                iterator = response.__aiter__()
                while True:
                    try:
                        # asyncio.timeout, not wait_for: no task created per chunk (Python 3.11's wait_for does).
                        async with asyncio.timeout(self.config.timeout_s):
                            chunk = await iterator.__anext__()
                    except StopAsyncIteration:
                        break
                    usage = self._note_usage(chunk) or usage
                    _collect_call_pieces(chunk, pieces)
                    delta = _delta_text(chunk)
                    if delta:
                        if first_token_s is None:
                            first_token_s = time.monotonic() - started
                        reply.append(delta)
                        yield delta
                    if _finish_reason(chunk) and _nobody_reads_litellm_logging(litellm, response):
                        usage = await self._drain_provider_stream(response) or usage
                        break
                if calls is not None:
                    calls.extend(_assembled(pieces))
                self._observe(messages, "".join(reply), usage, started=started, first_token_s=first_token_s)
                return
            except LLMError:
                raise
            except Exception as exc:
                if reply or attempt == self.config.max_tries or not is_retryable(exc):
                    error = self._give_up(exc, litellm)
                    self._observe(messages, "".join(reply), Usage(), started=started, failure=error.kind)
                    raise error from exc
                await self._backoff(attempt, exc)

    async def complete(self, messages: list[Message], *, max_tokens: int | None = None) -> str:
        """One non-streamed completion's text (used for summaries)."""
        litellm = await litellm_module()
        started = time.monotonic()
        for attempt in range(1, self.config.max_tries + 1):
            try:
                response = await litellm.acompletion(
                    **self._request_args(messages, stream=False, max_tokens=max_tokens)
                )
                usage = self._note_usage(response) or Usage()
                text = str(response.choices[0].message.content or "")
                self._observe(messages, text, usage, started=started, streamed=False)
                return text
            except Exception as exc:
                if attempt == self.config.max_tries or not is_retryable(exc):
                    error = self._give_up(exc, litellm)
                    self._observe(messages, "", Usage(), started=started, streamed=False, failure=error.kind)
                    raise error from exc
                await self._backoff(attempt, exc)
        raise AssertionError("unreachable")

    async def _drain_provider_stream(self, response: Any) -> Usage | None:
        """Read what the provider sends after the finish (its usage, then the end) and close the stream.

        This is where litellm's stream wrapper would assemble the whole response and run its success logging
        (cost calculation, callbacks): 3-4 ms between the model's last byte and the end of the stream, spent
        for nobody when no callback or cache is configured (``_nobody_reads_litellm_logging``). The chunks
        were already translated by litellm up to the finish; only the provider's usage is read from what
        follows, and without it the usage log counts the tokens itself.
        """
        usage: Usage | None = None
        try:
            async with asyncio.timeout(self.config.timeout_s):
                async for raw in response.completion_stream:
                    usage = _raw_usage(raw) or usage
                await response.aclose()
        except Exception as exc:  # the reply is complete; only the usage report is lost
            log.debug("reading the end of the provider stream failed: %r", exc)
        if usage is not None:
            self.last_usage = usage
        return usage

    def _note_usage(self, response: Any) -> Usage | None:
        """The usage a response or chunk reports, if any (also kept as ``last_usage``)."""
        usage = getattr(response, "usage", None)
        if not usage:
            return None
        self.last_usage = Usage(
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        )
        return self.last_usage

    def _observe(
        self,
        request: list[Message],
        reply: str,
        usage: Usage,
        *,
        started: float,
        streamed: bool = True,
        first_token_s: float | None = None,
        failure: FailureKind | None = None,
    ) -> None:
        """Tell the observers about one finished call (cheap: they queue, never compute, on this path)."""
        if not self._observers:
            return
        call = ModelCall(
            model=self.config.model,
            streamed=streamed,
            seconds=time.monotonic() - started,
            first_token_s=first_token_s,
            usage=usage,
            failure=failure,
            request=request,
            reply=reply,
        )
        for observer in self._observers:
            try:
                observer(call)
            except Exception:
                log.exception("a model call observer failed")
