"""The one LLM client: litellm, streamed, retried within bounds, with a typed error at the end.

litellm speaks to every provider (OpenAI, Anthropic, a local Ollama, any OpenAI-compatible server), so this
module stays small: it owns retries (litellm's and the openai SDK's own are switched off so a failing request is
tried exactly ``max_tries`` times), honours ``Retry-After``, and turns every failure into :class:`LLMError`,
which the router shows as a short friendly sentence while the log keeps the detail.

The pieces around the client have their own modules: ``agent/litellm_import.py`` imports litellm off the event
loop while the bot connects, ``agent/chunks.py`` reads the streamed chunks (text, tool calls in pieces, usage,
the stream's end), ``agent/failures.py`` classifies errors and words the user's message and the operator's fix,
``agent/costs.py`` holds what observers hear of each call and prices it later. The names bots/ and tests use are
re-exported here, so ``agent.llm`` stays the one place to import the client's vocabulary from.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from agent.chunks import (
    CallPieces,
    RequestedCall,
    assembled_calls,
    collect_call_pieces,
    delta_text,
    drain_provider_stream,
    finish_reason,
    nobody_reads_litellm_logging,
)
from agent.context import ContextBudget
from agent.costs import CallObserver, Message, ModelCall, PricedCall, Usage, price_calls
from agent.failures import (
    FailureKind,
    LLMError,
    classify,
    is_retryable,
    operator_fix,
    retry_after_s,
    setup_problem,
    status_of,
)
from agent.litellm_import import litellm_module, preload_litellm

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
    "StreamEnd",
    "Usage",
    "classify",
    "litellm_module",
    "preload_litellm",
    "price_calls",
]


@dataclass(slots=True)
class StreamEnd:
    """Why a streamed completion ended, as the provider said (``"stop"``, ``"length"``, ``"tool_calls"``)."""

    finish_reason: str | None = None


async def _close_quietly(response: Any, *, timeout_s: float) -> None:
    """Close a litellm stream the reader gave up on: the connection goes, and with it the model's work."""
    close = getattr(response, "aclose", None)
    if close is None:
        return
    try:
        async with asyncio.timeout(timeout_s):
            await close()
    except Exception as exc:
        log.debug("closing an abandoned model stream failed: %r", exc)


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
    max_output_tokens: int = 4096  # LLM_MAX_OUTPUT_TOKENS: an answer's max_tokens (within its budget)


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

    async def budget(self) -> ContextBudget:
        """What an answer's requests are planned against: the window, and the answer's room within it."""
        return ContextBudget(window=await self.max_input_tokens(), max_output=self.config.max_output_tokens)

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
        config = self.config
        return setup_problem(
            await litellm_module(), model=config.model, api_key=config.api_key, api_base=config.api_base
        )

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
        return operator_fix(
            kind,
            litellm,
            model=self.config.model,
            api_base=self.config.api_base,
            api_key=self.config.api_key,
            timeout_s=self.config.timeout_s,
            context_window_fallback=self.context_window_fallback,
        )

    async def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        tools: list[dict[str, Any]] | None = None,
        calls: list[RequestedCall] | None = None,
        ending: StreamEnd | None = None,
    ) -> AsyncGenerator[str, None]:
        """Yield text deltas of one completion; retry only while nothing has been yielded yet.

        With ``tools`` (OpenAI-format definitions) the model may also ask for tool calls: they arrive in pieces
        (by index, the arguments split across chunks) and are appended, whole, to ``calls`` when the stream ends.
        ``ending`` hears why the model stopped. A reader that closes this generator early (an answer cut for
        repeating itself, a reply the platform interrupted) closes the provider's stream too, so the model
        stops writing, and the call is still reported with what it wrote (so its tokens are charged).
        """
        litellm = await litellm_module()
        self.last_usage = Usage()
        started = time.monotonic()
        first_token_s: float | None = None
        reply: list[str] = []
        usage = Usage()
        for attempt in range(1, self.config.max_tries + 1):
            pieces: dict[int, CallPieces] = {}
            response: Any = None
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
                    collect_call_pieces(chunk, pieces)
                    delta = delta_text(chunk)
                    if delta:
                        if first_token_s is None:
                            first_token_s = time.monotonic() - started
                        reply.append(delta)
                        yield delta
                    reason = finish_reason(chunk)
                    if reason and ending is not None:
                        ending.finish_reason = reason
                    if reason and nobody_reads_litellm_logging(litellm, response):
                        drained = await drain_provider_stream(response, timeout_s=self.config.timeout_s)
                        if drained is not None:
                            self.last_usage = drained
                        usage = drained or usage
                        break
                if calls is not None:
                    calls.extend(assembled_calls(pieces))
                self._observe(messages, "".join(reply), usage, started=started, first_token_s=first_token_s)
                return
            except LLMError:
                raise
            except (GeneratorExit, asyncio.CancelledError):  # closed early, or a read cancelled (a turn stopped)
                await _close_quietly(response, timeout_s=self.config.timeout_s)
                self._observe(messages, "".join(reply), usage, started=started, first_token_s=first_token_s)
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
