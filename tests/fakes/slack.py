"""A loopback Slack: Web API methods, a Socket Mode websocket, and signed HTTP-mode requests.

The real slack-bolt app talks to it unmodified (``AsyncWebClient(base_url=fake.api_url)``). Every Web API call
is recorded with its parameters so tests assert on what Slack would have received; Socket Mode envelopes are
recorded with their acks. ``Payloads`` builds event and interaction bodies shaped like Slack's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from tests.fakes.server import LoopbackServer

BOT_USER = "UBOT"
BOT_ID = "BBOT"
TEAM = "T1"
GRANTED_SCOPES = ("app_mentions:read", "chat:write", "channels:history", "groups:history", "im:history", "users:read")


@dataclass
class ApiCall:
    method: str
    params: dict[str, Any]
    at: float


@dataclass
class FakeSlack:
    users: dict[str, str] = field(default_factory=lambda: {"UALICE": "Alice", "UBOB": "Bob", "UCAROL": "Carol"})
    auth_error: str | None = None
    app_token_error: str | None = None  # apps.connections.open fails with this error
    scopes: tuple[str, ...] = GRANTED_SCOPES  # sent back in every response's x-oauth-scopes header
    calls: list[ApiCall] = field(default_factory=list)
    acks: set[str] = field(default_factory=set)
    acked_at: dict[str, float] = field(default_factory=dict)  # envelope_id -> when its ack arrived
    sent_at: dict[str, float] = field(default_factory=dict)  # envelope_id -> when it was sent
    envelopes: list[str] = field(default_factory=list)
    connected_at: list[float] = field(default_factory=list)
    unacked: dict[str, tuple[dict[str, Any], str, int]] = field(default_factory=dict)
    rate_limited: dict[str, int] = field(default_factory=dict)  # method -> how many calls get a 429 first
    delays_s: dict[str, float] = field(default_factory=dict)  # method -> seconds before it answers
    disconnects: dict[str, int] = field(default_factory=dict)  # method -> how many calls lose their connection
    errors: dict[str, list[str]] = field(default_factory=dict)  # method -> error codes for its next calls
    on_ack: Callable[[str], None] | None = None  # called with the envelope_id the moment its ack arrives
    set_status_error: str | None = None  # every assistant.threads.setStatus fails so (outside assistant threads)
    spread: random.Random | None = None  # set: each envelope goes to a random live connection (several workers)
    _sockets: list[web.WebSocketResponse] = field(default_factory=list)
    _server: LoopbackServer = field(default_factory=LoopbackServer)
    _ts: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}/api/"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_get("/socket", self._socket)
        await self._server.start(app)

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        await self._server.stop()

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- what the bot sent -------------------------------------------------------------------------------------

    def calls_to(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method == method]

    def posts(self, *, thread_ts: str | None = None) -> list[ApiCall]:
        posts = [c for c in self.calls_to("chat.postMessage") if "_ts" in c.params]  # the ones Slack accepted
        return [c for c in posts if thread_ts is None or c.params.get("thread_ts") == thread_ts]

    def final_text(self, ts: str) -> str:
        """A message's text as the channel would show it now (its last update wins)."""
        text = ""
        for call in self.calls:
            if "_status" in call.params:
                continue  # Slack refused or never received it
            if call.method == "chat.postMessage" and call.params.get("_ts") == ts:
                text = call.params.get("text", "")
            if call.method == "chat.update" and call.params.get("ts") == ts:
                text = call.params.get("text", "")
        return text

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout}s; calls: {[c.method for c in self.calls]}")
            await asyncio.sleep(0.01)

    # -- Socket Mode --------------------------------------------------------------------------------------------

    @property
    def connected(self) -> int:
        return len([ws for ws in self._sockets if not ws.closed])

    async def send(self, payload: dict[str, Any], *, kind: str = "events_api", retry_attempt: int = 0) -> str:
        """Deliver one envelope to the connected app; return its envelope_id."""
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": False,
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
        }
        self.unacked[envelope_id] = (payload, kind, retry_attempt)
        self.envelopes.append(envelope_id)
        self.sent_at[envelope_id] = time.monotonic()
        live = [ws for ws in self._sockets if not ws.closed]
        assert live, "no Socket Mode connection"
        # If the app died under us, the envelope stays unacked and is redelivered, as Slack does.
        target = self.spread.choice(live) if self.spread is not None else live[-1]
        with contextlib.suppress(ConnectionError):
            await target.send_str(json.dumps(envelope))
        return envelope_id

    async def redeliver_unacked(self) -> int:
        """Send every envelope never acknowledged again (same payload and event_id), as Slack retries do."""
        pending, self.unacked = self.unacked, {}
        for payload, kind, attempt in pending.values():
            await self.send(payload, kind=kind, retry_attempt=attempt + 1)
        return len(pending)

    def current_blocks(self, ts: str) -> list[dict[str, Any]]:
        """A message's blocks as the channel shows them now."""
        blocks: list[dict[str, Any]] = []
        for call in self.calls:
            same = call.params.get("_ts") == ts if call.method == "chat.postMessage" else call.params.get("ts") == ts
            if call.method in ("chat.postMessage", "chat.update") and same and "blocks" in call.params:
                blocks = call.params["blocks"]
        return blocks

    async def drop_connections(self) -> None:
        for ws in list(self._sockets):
            await ws.close()

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self.connected_at.append(time.monotonic())
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": 1,
                    "debug_info": {"host": "fake"},
                    "connection_info": {"app_id": "A1"},
                }
            )
        )
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(message.data)
                if "envelope_id" in data:
                    self.acks.add(data["envelope_id"])
                    self.acked_at.setdefault(data["envelope_id"], time.monotonic())
                    if self.on_ack is not None:
                        self.on_ack(data["envelope_id"])
                    self.unacked.pop(data["envelope_id"], None)
        return ws

    # -- Web API ------------------------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.content_type == "application/json":
            params |= await request.json()
        elif request.method == "POST":
            params |= dict(await request.post())
        for key in ("blocks", "attachments"):
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        call = ApiCall(method, params, time.monotonic())
        self.calls.append(call)
        if self.delays_s.get(method):
            await asyncio.sleep(self.delays_s[method])
        if self.rate_limited.get(method):
            self.rate_limited[method] -= 1
            call.params["_status"] = 429
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "1"})
        if self.disconnects.get(method):
            self.disconnects[method] -= 1
            call.params["_status"] = "disconnected"
            assert request.transport is not None
            request.transport.close()  # the client sees the server disconnect: an aiohttp ClientError
            return web.Response()
        if self.errors.get(method):
            error = self.errors[method].pop(0)
            call.params["_status"] = error
            return web.json_response({"ok": False, "error": error})
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        result = handler(call) if handler else {"ok": True}
        return web.json_response(result, headers={"x-oauth-scopes": ",".join(self.scopes)})

    def _next_ts(self) -> str:
        n = next(self._ts)
        return f"{1_800_000_000 + n}.{n:06d}"

    def _auth_test(self, call: ApiCall) -> dict[str, Any]:
        if self.auth_error == "missing_scope":
            return {"ok": False, "error": "missing_scope", "needed": "chat:write", "provided": "app_mentions:read"}
        if self.auth_error:
            return {"ok": False, "error": self.auth_error}
        return {
            "ok": True,
            "url": "https://fake.example/",
            "team": "Fake Team",
            "user": "threadkeeper",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, call: ApiCall) -> dict[str, Any]:
        if self.app_token_error:
            return {"ok": False, "error": self.app_token_error}
        return {"ok": True, "url": f"ws://127.0.0.1:{self._server.port}/socket"}

    def _users_info(self, call: ApiCall) -> dict[str, Any]:
        user = str(call.params.get("user"))
        if user not in self.users:
            return {"ok": False, "error": "user_not_found"}
        name = self.users[user]
        return {"ok": True, "user": {"id": user, "name": name.lower(), "profile": {"display_name": name}}}

    def _chat_postMessage(self, call: ApiCall) -> dict[str, Any]:
        ts = self._next_ts()
        call.params["_ts"] = ts
        message = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": call.params.get("text", ""), "ts": ts}
        if call.params.get("thread_ts"):
            message["thread_ts"] = call.params["thread_ts"]
        return {"ok": True, "channel": call.params.get("channel"), "ts": ts, "message": message}

    def _chat_update(self, call: ApiCall) -> dict[str, Any]:
        return {
            "ok": True,
            "channel": call.params.get("channel"),
            "ts": call.params.get("ts"),
            "text": call.params.get("text", ""),
        }

    def _chat_delete(self, call: ApiCall) -> dict[str, Any]:
        return {"ok": True, "channel": call.params.get("channel"), "ts": call.params.get("ts")}

    def _chat_postEphemeral(self, call: ApiCall) -> dict[str, Any]:
        return {"ok": True, "message_ts": self._next_ts()}

    def _assistant_threads_setStatus(self, call: ApiCall) -> dict[str, Any]:
        if self.set_status_error:
            call.params["_status"] = self.set_status_error
            return {"ok": False, "error": self.set_status_error}
        return {"ok": True}

    def _conversations_info(self, call: ApiCall) -> dict[str, Any]:
        channel = str(call.params.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        is_im = channel.startswith("D")
        return {
            "ok": True,
            "channel": {"id": channel, "name": None if is_im else f"channel-{channel.lower()}", "is_im": is_im},
        }


class Payloads:
    """Event and interaction bodies shaped like Slack's."""

    _n = itertools.count(1)

    @classmethod
    def ts(cls) -> str:
        n = next(cls._n)
        return f"{1_700_000_000 + n}.{n:06d}"

    @staticmethod
    def event_body(event: dict[str, Any], *, event_id: str | None = None, team: str = TEAM) -> dict[str, Any]:
        return {
            "token": "verification-token",
            "team_id": team,
            "api_app_id": "A1",
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": team, "user_id": BOT_USER, "is_bot": True}],
        }

    @classmethod
    def shared_channel_body(
        cls, event: dict[str, Any], *, host_team: str, installed_team: str = TEAM
    ) -> dict[str, Any]:
        """An Events API body from a Slack Connect channel, as the app installed in ``installed_team`` gets it.

        Shaped after Slack's documented envelope for shared channels: the top-level ``team_id`` is the workspace
        that owns the channel, ``authorizations`` names the installation, ``event.team`` / ``event.user_team``
        the poster's own org.
        """
        body = cls.event_body(event, team=installed_team)
        body |= {"team_id": host_team, "is_ext_shared_channel": True, "context_team_id": host_team}
        return body

    @classmethod
    def mention(
        cls,
        text: str,
        *,
        user: str = "UALICE",
        channel: str = "C1",
        ts: str | None = None,
        thread_ts: str | None = None,
        team: str = TEAM,
    ) -> dict[str, Any]:
        ts = ts or cls.ts()
        event = {
            "type": "app_mention",
            "user": user,
            "text": f"<@{BOT_USER}> {text}",
            "ts": ts,
            "channel": channel,
            "team": team,
            "event_ts": ts,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        return event

    @classmethod
    def message(
        cls,
        text: str,
        *,
        user: str = "UALICE",
        channel: str = "C1",
        ts: str | None = None,
        thread_ts: str | None = None,
        channel_type: str = "channel",
        team: str = TEAM,
    ) -> dict[str, Any]:
        event = {
            "type": "message",
            "user": user,
            "text": text,
            "ts": ts or cls.ts(),
            "channel": channel,
            "channel_type": channel_type,
            "team": team,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        return event

    @classmethod
    def dm(
        cls, text: str, *, user: str = "UALICE", channel: str = "D1", thread_ts: str | None = None
    ) -> dict[str, Any]:
        """A direct message to the bot (``message.im``); top-level unless ``thread_ts`` is given."""
        return cls.message(text, user=user, channel=channel, thread_ts=thread_ts, channel_type="im")

    @staticmethod
    def changed(*, ts: str, text: str, thread_ts: str, channel: str = "C1", user: str = "UALICE") -> dict[str, Any]:
        return {
            "type": "message",
            "subtype": "message_changed",
            "channel": channel,
            "hidden": True,
            "message": {"type": "message", "user": user, "text": text, "ts": ts, "thread_ts": thread_ts},
            "ts": Payloads.ts(),
        }

    @staticmethod
    def deleted(*, ts: str, thread_ts: str, channel: str = "C1") -> dict[str, Any]:
        return {
            "type": "message",
            "subtype": "message_deleted",
            "channel": channel,
            "hidden": True,
            "deleted_ts": ts,
            "previous_message": {"type": "message", "ts": ts, "thread_ts": thread_ts},
            "ts": Payloads.ts(),
        }

    @staticmethod
    def click(
        value: str, *, user: str = "UALICE", channel: str = "C1", message_ts: str = "1.0", thread_ts: str | None = None
    ) -> dict[str, Any]:
        return {
            "type": "block_actions",
            "team": {"id": TEAM, "domain": "fake"},
            "api_app_id": "A1",
            "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
            "channel": {"id": channel, "name": "general"},
            "trigger_id": "trigger",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
            "message": {"type": "message", "ts": message_ts, "thread_ts": thread_ts, "text": "card"},
            "actions": [
                {"type": "button", "action_id": value, "block_id": "b", "value": value, "action_ts": str(time.time())}
            ],
            "response_url": "http://127.0.0.1:1/unused",
        }


def signed_headers(secret: str, body: str, *, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body) or ""
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}


async def post_event(
    url: str, secret: str, body: dict[str, Any], *, retry_num: int | None = None, bad_signature: bool = False
) -> int:
    """POST an Events API body the way Slack does in HTTP mode; return the status code."""
    raw = json.dumps(body)
    headers = {"Content-Type": "application/json", **signed_headers("wrong-secret" if bad_signature else secret, raw)}
    if retry_num is not None:
        headers |= {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
    async with aiohttp.ClientSession() as session, session.post(url, data=raw, headers=headers) as response:
        return response.status


async def post_interaction(url: str, secret: str, payload: dict[str, Any]) -> int:
    raw = urlencode({"payload": json.dumps(payload)})
    headers = {"Content-Type": "application/x-www-form-urlencoded", **signed_headers(secret, raw)}
    async with aiohttp.ClientSession() as session, session.post(url, data=raw, headers=headers) as response:
        return response.status
