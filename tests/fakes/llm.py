"""A loopback OpenAI-compatible chat completions server for tests and benchmarks.

litellm talks to it over real HTTP (``model="openai/<name>"``, ``api_base=fake.base_url``), JSON or SSE
streaming, so retries, timeouts and broken streams are exercised for real rather than through
``mock_response``. Replies are scripted: a FIFO queue, then a callable, then a deterministic echo of the last
user message. A reply can be tool calls (:meth:`FakeLLM.call_tools` with :class:`ScriptedCall`): OpenAI-format
``tool_calls`` in the JSON answer, and in SSE deltas the way OpenAI streams them (the id and name first, then
the arguments in pieces, by index), optionally interleaving parallel calls' pieces.
A reply can also loop (:meth:`FakeLLM.reply_looping`): a span streamed over and over, as a small model stuck in
a loop does, until the client goes away; the request records how much was sent and whether the client left.
With ``enforce_max_tokens`` a reply longer than the request's ``max_tokens`` (4 characters a token) is cut there
and ends with finish reason ``length``, as a provider does.
Faults (an HTTP status, a hang, a stream cut short) are queued and each one is consumed by one request before
any reply is; ``fail_always`` stands for a model that is down. Every request is recorded, the
faulted ones included, so tests assert on exactly what the model was sent and how many times.

Error bodies copy OpenAI's wording where litellm keys on it: a 400 over ``max_context_tokens`` says "This
model's maximum context length is ..." with code ``context_length_exceeded``, which litellm turns into
``ContextWindowExceededError``.

Speech to text (``/v1/audio/transcriptions``) is ``tests/fakes/transcriptions.py``, reached as
``fake.transcriptions``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from tests.fakes.server import LoopbackServer
from tests.fakes.transcriptions import FakeTranscriptions


@dataclass(frozen=True)
class ScriptedCall:
    """One tool call the fake model asks for. ``arguments`` as a str is sent verbatim (even if invalid JSON)."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None
    pieces: int = 1  # how many SSE chunks the arguments are split across

    @property
    def raw_arguments(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass(frozen=True)
class ToolCallReply:
    """A reply that is tool calls, optionally after some text."""

    calls: tuple[ScriptedCall, ...]
    text: str = ""
    interleave: bool = False  # stream the calls' argument pieces round-robin rather than call after call


@dataclass(frozen=True)
class LoopingReply:
    """A reply that is ``text``, then ``span`` again and again: ``times`` copies, or until the client leaves."""

    text: str
    span: str
    times: int | None = None  # None: until the client disconnects (at most LOOPING_MAX_CHARS)

    def pieces(self, size: int) -> Iterator[str]:
        """The reply in pieces of ``size`` characters, lazily (a runaway reply is never built whole)."""
        limit = LOOPING_MAX_CHARS if self.times is None else len(self.text) + len(self.span) * self.times
        buffer, sent = self.text, 0
        while sent < limit:
            while len(buffer) < size:
                buffer += self.span
            piece = buffer[: min(size, limit - sent)]
            buffer = buffer[len(piece) :]
            sent += len(piece)
            yield piece


LOOPING_MAX_CHARS = 100_000
Reply = str | ToolCallReply | LoopingReply
ReplyFunction = Callable[[dict[str, Any]], Reply]

_DISCONNECT_POLL_S = 0.02


def _content_text(content: Any) -> str:
    """A message's text, whether ``content`` is a string or a list of typed parts."""
    if isinstance(content, list):
        return "".join(str(part.get("text") or "") for part in content if isinstance(part, dict))
    return str(content or "")


@dataclass
class RecordedRequest:
    """One POST to /chat/completions, as received, and what the fake did with it."""

    body: dict[str, Any]
    headers: dict[str, str]
    stream: bool
    received_at: float
    status: int = 200  # the HTTP status sent; 0 when the connection ended without a response
    fault: str | None = None  # "status", "hang" or "break" when a fault was applied
    tokens: int | None = None  # litellm.token_counter estimate, counted only while max_context_tokens is set
    reply: str | None = None
    tool_calls: tuple[ScriptedCall, ...] = ()  # the calls this request was answered with
    finished_at: float | None = None
    sent_chars: int = 0  # characters of reply text streamed
    client_gone: bool = False  # the client closed the stream before the reply ended

    @property
    def max_tokens(self) -> int | None:
        """The request's ``max_tokens`` (None when it set none)."""
        value = self.body.get("max_tokens")
        return int(value) if value is not None else None

    @property
    def prompt_text(self) -> str:
        return "\n".join(_content_text(m.get("content")) for m in self.body.get("messages", []))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def image_parts(self) -> list[tuple[str, str]]:
        """Every image part sent, as (the role of its message, its URL), in order."""
        return [
            (str(m.get("role")), str(part.get("image_url", {}).get("url")))
            for m in self.messages
            if isinstance(m.get("content"), list)
            for part in m["content"]
            if isinstance(part, dict) and part.get("type") == "image_url"
        ]

    @property
    def tools(self) -> list[dict[str, Any]] | None:
        """The ``tools`` the request offered, as sent (None when it offered none)."""
        tools = self.body.get("tools")
        return list(tools) if tools else None

    @property
    def tool_names(self) -> list[str]:
        return [str(t.get("function", {}).get("name")) for t in self.tools or []]


@dataclass
class _Fault:
    kind: str  # "status" | "hang" | "break"
    status: int = 500
    retry_after: float | None = None
    seconds: float = 0.0
    after_chars: int = 0


@dataclass
class FakeLLM:
    chunk_chars: int = 8
    chunk_delay_s: float = 0.0
    latency_s: float = 0.0
    max_context_tokens: int | None = None
    keep_requests: bool = True  # benchmarks that measure memory switch the recording off
    report_usage: bool = True  # False: like a provider that reports no token usage at all
    echo_key_in_errors: bool = False  # error bodies quote the request's bearer token (worst case for redaction)
    enforce_max_tokens: bool = False  # cut a reply at the request's max_tokens (finish reason "length")
    requests: list[RecordedRequest] = field(default_factory=list)
    max_seen_tokens: int | None = None
    _replies: deque[Reply] = field(default_factory=deque)
    _faults: deque[_Fault] = field(default_factory=deque)
    _always: _Fault | None = None
    _reply_fn: ReplyFunction | None = None
    _pause: tuple[int, asyncio.Event] | None = None
    _server: LoopbackServer = field(default_factory=LoopbackServer)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    transcriptions: FakeTranscriptions = field(default_factory=FakeTranscriptions)  # /v1/audio/transcriptions

    # -- scripting ------------------------------------------------------------------------------------------

    def reply(self, text: str) -> None:
        """Queue one reply (FIFO)."""
        self._replies.append(text)

    def pause_after(self, chars: int) -> asyncio.Event:
        """The next streamed reply stops after ``chars`` characters until the returned event is set.

        Stands for a model that has said something and is now busy (a tool running): what the thread shows
        meanwhile can be asserted without racing the stream.
        """
        self._pause = (chars, asyncio.Event())
        return self._pause[1]

    def reply_looping(self, text: str, *, span: str, times: int | None = None) -> None:
        """Queue one reply that streams ``text`` and then ``span`` over and over (see :class:`LoopingReply`)."""
        self._replies.append(LoopingReply(text=text, span=span, times=times))

    def call_tools(self, *calls: ScriptedCall, text: str = "", interleave: bool = False) -> None:
        """Queue one reply that asks for ``calls`` (in parallel when several), after ``text`` if given."""
        self._replies.append(ToolCallReply(calls=tuple(calls), text=text, interleave=interleave))

    def reply_with(self, function: ReplyFunction) -> None:
        """Answer with ``function(request_body)`` whenever the reply queue is empty (text or a ToolCallReply)."""
        self._reply_fn = function

    def fail(self, status: int, *, retry_after: float | None = None) -> None:
        """The next request gets this HTTP status with an OpenAI-style error body (and Retry-After if given)."""
        self._faults.append(_Fault("status", status=status, retry_after=retry_after))

    def fail_always(self, status: int, *, retry_after: float | None = None) -> None:
        """Every request without a queued fault gets this status, until clear_faults()."""
        self._always = _Fault("status", status=status, retry_after=retry_after)

    def hang(self, seconds: float) -> None:
        """The next request is accepted, then left unanswered for ``seconds`` or until the client gives up."""
        self._faults.append(_Fault("hang", seconds=seconds))

    def break_stream(self, *, after_chars: int) -> None:
        """The next request gets ``after_chars`` characters of its reply, then the connection is dropped."""
        self._faults.append(_Fault("break", after_chars=after_chars))

    def clear_faults(self) -> None:
        self._faults.clear()
        self._always = None

    def requests_containing(self, text: str) -> list[RecordedRequest]:
        return [r for r in self.requests if text in r.prompt_text]

    # -- lifecycle ------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}/v1"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_post("/chat/completions", self._completions)
        self.transcriptions.add_routes(app)
        await self._server.start(app)

    async def stop(self) -> None:
        """Stop listening; requests still hanging or streaming are cancelled after a short grace period."""
        await self._server.stop()

    async def __aenter__(self) -> FakeLLM:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the endpoint ---------------------------------------------------------------------------------------

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        if self._replies:
            return self._replies.popleft()
        if self._reply_fn is not None:
            return self._reply_fn(body)
        last_user: dict[str, Any] = next((m for m in reversed(body.get("messages", [])) if m.get("role") == "user"), {})
        return f"echo: {_content_text(last_user.get('content'))[:60]}"

    def _count_tokens(self, body: dict[str, Any]) -> int:
        import litellm  # the tests have imported it already; the fake only needs it for this estimate

        return int(litellm.token_counter(model="openai/fake", messages=body.get("messages", [])))

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        stream = bool(body.get("stream"))
        record = RecordedRequest(body=body, headers=dict(request.headers), stream=stream, received_at=time.monotonic())
        if self.keep_requests:
            self.requests.append(record)
        fault = self._faults.popleft() if self._faults else self._always
        record.fault = fault.kind if fault is not None else None
        if self.max_context_tokens is not None:
            record.tokens = await asyncio.to_thread(self._count_tokens, body)
            self.max_seen_tokens = max(self.max_seen_tokens or 0, record.tokens)
        if fault is not None and fault.kind == "status":
            record.status = fault.status
            quoted = request.headers.get("Authorization", "") if self.echo_key_in_errors else ""
            return _error(fault.status, retry_after=fault.retry_after, quoted=quoted)
        if fault is not None and fault.kind == "hang" and not await _hold(request, fault.seconds):
            record.status = 0  # the client gave up first: nobody reads this, and no scripted reply is used up
            return web.Response(status=499)
        if self.max_context_tokens is not None and (record.tokens or 0) > self.max_context_tokens:
            record.status = 400
            return _context_exceeded(self.max_context_tokens, record.tokens or 0)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        answer = self._next_reply(body)
        calls = answer.calls if isinstance(answer, ToolCallReply) else ()
        looping = answer if isinstance(answer, LoopingReply) else None
        text = answer.text if isinstance(answer, ToolCallReply | LoopingReply) else answer
        calls = tuple(c if c.id else replace(c, id=f"call_{next(self._ids)}") for c in calls)
        interleave = isinstance(answer, ToolCallReply) and answer.interleave
        record.reply, record.tool_calls = text, calls
        completion_id = f"chatcmpl-{next(self._ids)}"
        breaking = fault is not None and fault.kind == "break"
        if not stream:
            if breaking:
                record.status = 0
                _drop(request)
                return web.Response(status=499)
            record.finished_at = time.monotonic()
            completion = _completion(completion_id, body, text, calls)
            if not self.report_usage:
                del completion["usage"]
            return _json(completion)
        after_chars = fault.after_chars if fault is not None and breaking else None
        if looping is not None:
            return await self._stream_looping(request, record, completion_id, body, looping)
        response = await self._stream(request, completion_id, body, text, after_chars, calls, interleave)
        if not breaking:
            record.finished_at = time.monotonic()
        return response

    async def _stream(
        self,
        request: web.Request,
        completion_id: str,
        body: dict[str, Any],
        text: str,
        after_chars: int | None,
        calls: tuple[ScriptedCall, ...] = (),
        interleave: bool = False,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        model = str(body.get("model", "fake"))
        sent_text = text if after_chars is None else text[:after_chars]
        finish = "tool_calls" if calls else "stop"
        limit = body.get("max_tokens")
        if self.enforce_max_tokens and limit and after_chars is None and len(sent_text) > int(limit) * 4:
            sent_text, finish = sent_text[: int(limit) * 4], "length"
        size = max(1, self.chunk_chars)
        pieces = [sent_text[i : i + size] for i in range(0, len(sent_text), size)]
        if after_chars is None and not pieces and not calls:
            pieces = [""]
        await response.write(_sse(_chunk(completion_id, model, {"role": "assistant", "content": ""}, None)))
        pause, self._pause = self._pause, None
        sent = 0
        for piece in pieces:
            await response.write(_sse(_chunk(completion_id, model, {"content": piece}, None)))
            sent += len(piece)
            if pause is not None and sent >= pause[0]:
                await pause[1].wait()
                pause = None
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
        if after_chars is not None:
            _drop(request)  # no finish chunk, no [DONE]: the client sees the connection reset mid-body
            return response
        for delta in _call_deltas(calls, interleave=interleave):
            await response.write(_sse(_chunk(completion_id, model, delta, None)))
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
        await response.write(_sse(_chunk(completion_id, model, {}, finish)))
        if self.report_usage and (body.get("stream_options") or {}).get("include_usage"):
            usage_chunk = _chunk(completion_id, model, {}, None)
            usage_chunk["choices"] = []
            usage_chunk["usage"] = _usage(body, text)
            await response.write(_sse(usage_chunk))
        await response.write(b"data: [DONE]\n\n")
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    async def _stream_looping(
        self,
        request: web.Request,
        record: RecordedRequest,
        completion_id: str,
        body: dict[str, Any],
        reply: LoopingReply,
    ) -> web.StreamResponse:
        """Stream a looping reply until it ends or the client leaves (then record that, and stop sending)."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        model = str(body.get("model", "fake"))
        try:
            await response.write(_sse(_chunk(completion_id, model, {"role": "assistant", "content": ""}, None)))
            for piece in reply.pieces(max(1, self.chunk_chars)):
                transport = request.transport
                if transport is None or transport.is_closing():
                    raise ConnectionResetError("the client closed the stream")
                await response.write(_sse(_chunk(completion_id, model, {"content": piece}, None)))
                record.sent_chars += len(piece)
                await asyncio.sleep(self.chunk_delay_s)  # at least a yield: the client's close is noticed
            await response.write(_sse(_chunk(completion_id, model, {}, "stop")))
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            record.finished_at = time.monotonic()
        except ConnectionError:
            record.client_gone = True
        return response


async def _hold(request: web.Request, seconds: float) -> bool:
    """Sit on a request for ``seconds``; False as soon as the client closes the connection."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        transport = request.transport
        if transport is None or transport.is_closing():
            return False
        await asyncio.sleep(min(_DISCONNECT_POLL_S, max(0.0, deadline - time.monotonic())))
    return True


def _drop(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


def _usage(body: dict[str, Any], text: str) -> dict[str, int]:
    prompt = sum(len(_content_text(m.get("content"))) for m in body.get("messages", [])) // 4 + 1
    completion = len(text) // 4 + 1
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion(
    completion_id: str, body: dict[str, Any], text: str, calls: tuple[ScriptedCall, ...] = ()
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["content"] = text or None
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.raw_arguments}} for c in calls
        ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": _usage(body, text),
    }


def _call_deltas(calls: tuple[ScriptedCall, ...], *, interleave: bool) -> list[dict[str, Any]]:
    """The SSE deltas of ``calls``: per call a header (index, id, name), then its arguments in pieces."""
    per_call: list[list[dict[str, Any]]] = []
    for index, call in enumerate(calls):
        raw = call.raw_arguments
        size = max(1, -(-len(raw) // max(1, call.pieces)))
        parts = [raw[i : i + size] for i in range(0, len(raw), size)] or [""]
        header = {"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        deltas = [{"tool_calls": [header]}]
        deltas += [{"tool_calls": [{"index": index, "function": {"arguments": part}}]} for part in parts]
        per_call.append(deltas)
    if not interleave:
        return [delta for deltas in per_call for delta in deltas]
    return [d for group in itertools.zip_longest(*per_call) for d in group if d is not None]


def _chunk(completion_id: str, model: str, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _json(payload: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(payload), content_type="application/json", headers=headers)


_ERRORS = {
    400: ("invalid_request_error", "invalid_request_error", "The request was invalid."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "You may not use this model."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    503: ("server_error", "service_unavailable", "The server is overloaded or not ready yet."),
}


def _error(status: int, *, retry_after: float | None, quoted: str = "") -> web.Response:
    error_type, code, message = _ERRORS.get(
        status, ("server_error", "server_error", "The server had an error while processing your request.")
    )
    if quoted:
        message = f"{message} You sent: {quoted}."
    payload = {"error": {"message": f"{message} (fake {status})", "type": error_type, "param": None, "code": code}}
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    return _json(payload, status=status, headers=headers)


def _context_exceeded(limit: int, tokens: int) -> web.Response:
    message = (
        f"This model's maximum context length is {limit} tokens. However, your messages resulted in {tokens} "
        "tokens. Please reduce the length of the messages."
    )
    payload = {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
    return _json(payload, status=400)
