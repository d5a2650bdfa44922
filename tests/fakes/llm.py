"""A loopback OpenAI-compatible chat completions server for tests and benchmarks.

litellm talks to it over real HTTP (``model="openai/<name>"``, ``api_base=fake.base_url``), JSON or SSE
streaming, so retries, timeouts and broken streams are exercised for real. Replies are scripted (a FIFO queue,
then a callable, then a deterministic echo); faults are queued and consumed one per request before replies.
Every request is recorded, the faulted ones included.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.server import LoopbackServer

ReplyFunction = Callable[[dict[str, Any]], str]


@dataclass
class RecordedRequest:
    body: dict[str, Any]
    headers: dict[str, str]
    stream: bool
    received_at: float
    status: int = 200
    tokens: int | None = None
    reply: str | None = None
    finished_at: float | None = None

    @property
    def prompt_text(self) -> str:
        return "\n".join(str(m.get("content") or "") for m in self.body.get("messages", []))


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
    requests: list[RecordedRequest] = field(default_factory=list)
    max_seen_tokens: int | None = None
    _replies: deque[str] = field(default_factory=deque)
    _faults: deque[_Fault] = field(default_factory=deque)
    _always: _Fault | None = None
    _reply_fn: ReplyFunction | None = None
    _server: LoopbackServer = field(default_factory=LoopbackServer)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    # -- scripting ------------------------------------------------------------------------------------------

    def reply(self, text: str) -> None:
        self._replies.append(text)

    def reply_with(self, function: ReplyFunction) -> None:
        self._reply_fn = function

    def fail(self, *, status: int, retry_after: float | None = None) -> None:
        self._faults.append(_Fault("status", status=status, retry_after=retry_after))

    def fail_always(self, *, status: int) -> None:
        self._always = _Fault("status", status=status)

    def hang(self, seconds: float) -> None:
        self._faults.append(_Fault("hang", seconds=seconds))

    def break_stream(self, *, after_chars: int) -> None:
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
        await self._server.start(app)

    async def stop(self) -> None:
        await self._server.stop()

    async def __aenter__(self) -> FakeLLM:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the endpoint ---------------------------------------------------------------------------------------

    def _next_reply(self, body: dict[str, Any]) -> str:
        if self._replies:
            return self._replies.popleft()
        if self._reply_fn is not None:
            return self._reply_fn(body)
        last_user = next((m for m in reversed(body.get("messages", [])) if m.get("role") == "user"), {})
        return f"echo: {str(last_user.get('content') or '')[:60]}"

    def _count_tokens(self, body: dict[str, Any]) -> int | None:
        if self.max_context_tokens is None:
            return None
        import litellm

        return int(litellm.token_counter(model="openai/fake", messages=body.get("messages", [])))

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        stream = bool(body.get("stream"))
        record = RecordedRequest(body=body, headers=dict(request.headers), stream=stream, received_at=time.monotonic())
        if self.keep_requests:
            self.requests.append(record)
        record.tokens = await asyncio.to_thread(self._count_tokens, body)
        if record.tokens is not None:
            self.max_seen_tokens = max(self.max_seen_tokens or 0, record.tokens)
        fault = self._faults.popleft() if self._faults else self._always
        if fault is not None and fault.kind == "status":
            record.status = fault.status
            return _error(fault.status, fault.retry_after)
        if fault is not None and fault.kind == "hang":
            await asyncio.sleep(fault.seconds)
        if self.max_context_tokens is not None and (record.tokens or 0) > self.max_context_tokens:
            record.status = 400
            return _error(400, None, code="context_length_exceeded")
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        text = self._next_reply(body)
        record.reply = text
        completion_id = f"chatcmpl-{next(self._ids)}"
        if not stream:
            record.finished_at = time.monotonic()
            return _json(_completion(completion_id, body, text))
        response = await self._stream(request, completion_id, body, text, fault)
        if fault is None or fault.kind != "break":
            record.finished_at = time.monotonic()
        return response

    async def _stream(
        self, request: web.Request, completion_id: str, body: dict[str, Any], text: str, fault: _Fault | None
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        model = body.get("model", "fake")
        pieces = [text[i : i + self.chunk_chars] for i in range(0, len(text), self.chunk_chars)] or [""]
        sent = 0
        for piece in pieces:
            if fault is not None and fault.kind == "break" and sent >= fault.after_chars:
                transport = request.transport
                if transport is not None:
                    transport.abort()
                return response
            await response.write(_sse(_chunk(completion_id, model, {"content": piece}, None)))
            sent += len(piece)
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
        await response.write(_sse(_chunk(completion_id, model, {}, "stop")))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage_chunk = _chunk(completion_id, model, {}, None)
            usage_chunk["choices"] = []
            usage_chunk["usage"] = _usage(body, text)
            await response.write(_sse(usage_chunk))
        await response.write(b"data: [DONE]\n\n")
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response


def _usage(body: dict[str, Any], text: str) -> dict[str, int]:
    prompt = sum(len(str(m.get("content") or "")) for m in body.get("messages", [])) // 4 + 1
    completion = len(text) // 4 + 1
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion(completion_id: str, body: dict[str, Any], text: str) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": _usage(body, text),
    }


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


def _error(status: int, retry_after: float | None, *, code: str | None = None) -> web.Response:
    error_type = {429: "rate_limit_exceeded", 400: "invalid_request_error", 401: "invalid_api_key"}.get(
        status, "server_error"
    )
    payload = {"error": {"message": f"fake error {status}", "type": error_type, "code": code or error_type}}
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    return _json(payload, status=status, headers=headers)
