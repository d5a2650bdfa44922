"""A loopback Slack: Web API methods, a Socket Mode websocket, and signed HTTP-mode requests.

The real slack-bolt app talks to it unmodified (``AsyncWebClient(base_url=fake.api_url)``). Every Web API call
is recorded with its parameters so tests assert on what Slack would have received; Socket Mode envelopes are
recorded with their acks. ``Payloads`` builds event and interaction bodies shaped like Slack's. File uploads
follow files upload v2 (files.getUploadURLExternal, a POST of the bytes to the URL it gave, then
files.completeUploadExternal); the fake keeps each file's bytes and where it was shared.
"""

from __future__ import annotations

import asyncio
import base64
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
from tests.fakes.waiting import wait_until

BOT_USER = "UBOT"
BOT_ID = "BBOT"
TEAM = "T1"
GRANTED_SCOPES = (
    "app_mentions:read",
    "assistant:write",
    "chat:write",
    "channels:history",
    "groups:history",
    "im:history",
    "users:read",
    "files:write",
    "im:write",
    "files:read",
)
STREAM_CALL_LIMIT = 12_000  # characters of markdown a streaming call may carry


@dataclass
class ApiCall:
    method: str
    params: dict[str, Any]
    at: float
    token: str | None = None  # the Bearer token it carried (None: none, or the app's client credentials)


@dataclass
class Workspace:
    """A workspace the app can be installed in through "Add to Slack" (oauth.v2.access)."""

    team_id: str
    name: str
    bot_user: str
    rotation: bool = False  # token rotation on: tokens expire and come with a refresh token
    expires_in_s: int = 43_200
    tokens: list[str] = field(default_factory=list)  # every bot token issued to it, newest last
    refresh_tokens: list[str] = field(default_factory=list)


@dataclass
class Stream:
    """A natively streamed message as Slack holds it."""

    channel: str
    thread_ts: str | None
    text: str = ""
    stopped: bool = False
    tasks: dict[str, str] = field(default_factory=dict)  # task id -> its last status
    blocks: list[dict[str, Any]] = field(default_factory=list)  # sent with the stop


@dataclass
class AgentSession:
    """A thread's agent session as Slack keeps it: its title and every status it was set to."""

    title: str | None = None
    statuses: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)  # every title it had, the first one included


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
    delivered_to: dict[str, int] = field(default_factory=dict)  # envelope_id -> which connection (0: the first made)
    connected_at: list[float] = field(default_factory=list)
    unacked: dict[str, tuple[dict[str, Any], str, int]] = field(default_factory=dict)
    rate_limited: dict[str, int] = field(default_factory=dict)  # method -> how many calls get a 429 first
    delays_s: dict[str, float] = field(default_factory=dict)  # method -> seconds before it answers
    disconnects: dict[str, int] = field(default_factory=dict)  # method -> how many calls lose their connection
    errors: dict[str, list[str]] = field(default_factory=dict)  # method -> error codes for its next calls
    # method -> its calls are answered only once this holds (else, after 5 s, with the error "held_too_long")
    held_until: dict[str, Callable[[], bool]] = field(default_factory=dict)
    held_s: float = 5.0  # how long a held call is held at most
    on_ack: Callable[[str], None] | None = None  # called with the envelope_id the moment its ack arrives
    set_status_error: str | None = None  # every assistant.threads.setStatus fails so (outside assistant threads)
    # chat.startStream / appendStream / stopStream: an older workspace (the default) does not know them.
    streaming: bool = False
    streams: dict[str, Stream] = field(default_factory=dict)  # ts -> the streamed message
    uploads: dict[str, bytes] = field(default_factory=dict)  # file_id -> the bytes POSTed to its upload URL
    bot_token: str = "xoxb-test-token"  # url_private downloads need it as Bearer, like Slack's file servers
    files: dict[str, bytes] = field(default_factory=dict)  # file id -> what url_private serves
    file_faults: dict[str, int | float | str] = field(default_factory=dict)  # id -> status, seconds, or "sign-in"
    file_downloads: list[tuple[str, int]] = field(default_factory=list)  # (file id, status answered), in order
    file_redirects: dict[str, str] = field(default_factory=dict)  # id -> where its download redirects (302)
    spread: random.Random | None = None  # set: each envelope goes to a random live connection (several workers)
    # agents.sessions.*: set, every call is refused with this error (an app not declared as an agent, say)
    agent_sessions_error: str | None = None
    refused_methods: dict[str, str] = field(default_factory=dict)  # method -> the error every call to it gets
    sessions: dict[tuple[str, str], AgentSession] = field(default_factory=dict)  # (channel, thread_ts) -> session
    # "Add to Slack": the workspaces, the codes Slack's authorize page would hand out, the app's credentials.
    workspaces: dict[str, Workspace] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)  # code -> team id (a code works once)
    client_credentials: tuple[str, str] = ("111.222", "client-secret")
    revoked: set[str] = field(default_factory=set)  # tokens Slack no longer accepts (uninstalled)
    # (channel, thread_ts) -> people's messages Slack keeps there (``wrote_in_thread``), served by conversations.replies
    thread_messages: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
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
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/files-pri/{file_id}/{name}", self._file_download)
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
        self.delivered_to[envelope_id] = self._sockets.index(target)
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

    def click_on(self, value: str, *, user: str = "UALICE") -> dict[str, Any]:
        """A click on the posted message that shows the button ``value``, as Slack sends it: the body names that
        message, its channel and its thread (the bot refuses a click whose thread the body does not say)."""
        for call in reversed(self.posts()):
            ts = str(call.params["_ts"])
            buttons = (e for b in self.current_blocks(ts) if b.get("type") == "actions" for e in b.get("elements", []))
            if any(e.get("value") == value for e in buttons):
                channel = str(call.params["channel"])
                thread_ts = call.params.get("thread_ts")
                return Payloads.click(value, user=user, channel=channel, message_ts=ts, thread_ts=thread_ts)
        raise AssertionError(f"no posted message shows a button {value!r}")

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
        authorization = request.headers.get("Authorization", "")
        token = authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else None
        call = ApiCall(method, params, time.monotonic(), token=token or params.get("token"))
        if method == "oauth.v2.access":
            call.params["_basic"] = authorization
        self.calls.append(call)
        if self.delays_s.get(method):
            await asyncio.sleep(self.delays_s[method])
        if method in self.held_until:
            try:
                await wait_until(self.held_until[method], timeout=self.held_s, what=f"{method} released")
            except AssertionError:
                return web.json_response(self._refuse(call, "held_too_long"))
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

    # -- files (url_private) ------------------------------------------------------------------------------------

    def file(
        self, name: str, data: bytes, *, mimetype: str, size: int | None = None, team: str = TEAM
    ) -> dict[str, Any]:
        """A file object as a ``file_share`` message carries it; ``size`` is what Slack claims (default: the truth).

        Its URL names ``team``, whose bot token alone may download it."""
        file_id = f"F{len(self.files) + 1:08d}"
        self.files[file_id] = data
        url = f"http://127.0.0.1:{self._server.port}/files-pri/{team}-{file_id}/{name}"
        return {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "size": len(data) if size is None else size,
            "url_private": url,
            "url_private_download": url + "?download=1",
        }

    async def _file_download(self, request: web.Request) -> web.Response:
        team, file_id = request.match_info["file_id"].split("-", 1)
        fault = self.file_faults.get(file_id)
        status = 200
        authorization = request.headers.get("Authorization", "")
        token = authorization.removeprefix("Bearer ")
        if not (token == self.bot_token or (authorization.startswith("Bearer ") and self.team_of_token(token) == team)):
            status = 401  # Slack answers a login page or 401 without the token; never the file
        elif isinstance(fault, int):
            status = fault
        elif file_id in self.file_redirects:
            status = 302
        elif file_id not in self.files:
            status = 404
        self.file_downloads.append((file_id, status))
        if status == 302:
            raise web.HTTPFound(self.file_redirects[file_id])
        if status != 200:
            return web.Response(status=status, text="unauthorized" if status == 401 else "error")
        if isinstance(fault, float):
            await asyncio.sleep(fault)  # a file server that never answers within the bot's timeout
        if fault == "sign-in":  # what Slack serves a token without files:read: its sign-in page, with a 200
            return web.Response(text="<html><body>Sign in to Slack</body></html>", content_type="text/html")
        return web.Response(body=self.files[file_id], content_type="application/octet-stream")

    def _next_ts(self) -> str:
        n = next(self._ts)
        return f"{1_800_000_000 + n}.{n:06d}"

    # -- "Add to Slack" (oauth.v2.access) and each workspace's tokens ----------------------------------------

    def install_code(
        self, team: str, *, name: str | None = None, rotation: bool = False, expires_in_s: int = 43_200
    ) -> str:
        """What Slack's authorize page hands the redirect after someone in ``team`` clicks Allow."""
        workspace = self.workspaces.setdefault(team, Workspace(team, name or f"Team {team}", f"UBOT{team}"))
        workspace.rotation, workspace.expires_in_s = rotation, expires_in_s
        code = f"code-{team}-{uuid.uuid4().hex[:8]}"
        self.codes[code] = team
        return code

    def team_of_token(self, token: str | None) -> str | None:
        for workspace in self.workspaces.values():
            if token in workspace.tokens and token not in self.revoked:
                return workspace.team_id
        return None

    def uninstall(self, team: str) -> None:
        """Slack revokes every token of the workspace (app_uninstalled follows)."""
        workspace = self.workspaces[team]
        self.revoked |= {*workspace.tokens, *workspace.refresh_tokens}

    def _oauth_v2_access(self, call: ApiCall) -> dict[str, Any]:
        client_id, secret = self.client_credentials
        expected = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        if call.params.get("_basic") != expected:
            return self._refuse(call, "invalid_client_id")
        if call.params.get("grant_type") == "refresh_token":
            refresh = str(call.params.get("refresh_token"))
            found = [w for w in self.workspaces.values() if refresh in w.refresh_tokens and refresh not in self.revoked]
            if not found:
                return self._refuse(call, "invalid_refresh_token")
            workspace = found[0]
        else:
            team = self.codes.pop(str(call.params.get("code")), None)
            if team is None:
                return self._refuse(call, "invalid_code")  # unknown, or used already
            workspace = self.workspaces[team]
        n = len(workspace.tokens) + 1
        token = f"xoxe.xoxb-1-{workspace.team_id}-{n}" if workspace.rotation else f"xoxb-{workspace.team_id}-{n}"
        workspace.tokens.append(token)
        answer: dict[str, Any] = {
            "ok": True,
            "app_id": "A1",
            "authed_user": {"id": "UALICE"},
            "scope": ",".join(self.scopes),
            "token_type": "bot",
            "access_token": token,
            "bot_user_id": workspace.bot_user,
            "team": {"id": workspace.team_id, "name": workspace.name},
            "enterprise": None,
            "is_enterprise_install": False,
        }
        if workspace.rotation:
            refresh = f"xoxe-1-refresh-{workspace.team_id}-{n}"
            workspace.refresh_tokens.append(refresh)
            answer |= {"refresh_token": refresh, "expires_in": workspace.expires_in_s}
        return answer

    def _auth_test(self, call: ApiCall) -> dict[str, Any]:
        if self.workspaces and not (call.token == self.bot_token and not self.auth_error):
            team = self.team_of_token(call.token)
            if team is None:
                return self._refuse(call, "invalid_auth")
            workspace = self.workspaces[team]
            return {
                "ok": True, "url": f"https://{team.lower()}.fake.example/", "team": workspace.name,
                "user": "threadkeeper", "team_id": team, "user_id": workspace.bot_user, "bot_id": f"B{team}",
                "is_enterprise_install": False,
            }  # fmt: skip
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

    def wrote_in_thread(
        self, text: str, *, thread_ts: str, channel: str = "C1", user: str = "UALICE", **extra: Any
    ) -> dict[str, Any]:
        """A person's message Slack keeps in a thread (the bot, not in it yet, got no event for it); the first one
        with ``ts == thread_ts`` is the thread's parent."""
        ts = extra.pop("ts", None) or Payloads.ts()
        message = {"type": "message", "user": user, "text": text, "ts": ts, "thread_ts": thread_ts, "team": TEAM}
        self.thread_messages.setdefault((channel, thread_ts), []).append(message | extra)
        return message | extra

    def _conversations_replies(self, call: ApiCall) -> dict[str, Any]:
        """A thread as it looks now, oldest first: what people wrote there (``wrote_in_thread``) and the bot's
        messages, before ``latest`` and after ``oldest`` (inclusive only with ``inclusive``; the parent always),
        paged by ``limit`` and ``cursor``.

        People's messages that arrive as events are not kept: the bot was in the thread for those."""
        channel, thread_ts = call.params.get("channel"), call.params.get("ts")
        if not channel or not thread_ts:
            return self._refuse(call, "invalid_arguments")
        deleted = {c.params.get("ts") for c in self.calls_to("chat.delete") if "_status" not in c.params}
        messages: list[dict[str, Any]] = []
        for post in self.posts(thread_ts=str(thread_ts)):
            ts = str(post.params["_ts"])
            if post.params.get("channel") == channel and ts not in deleted:
                messages.append(
                    {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "ts": ts, "thread_ts": thread_ts}
                    | {"text": self.final_text(ts), "blocks": self.current_blocks(ts)}
                )
        messages = sorted([*messages, *self.thread_messages.get((str(channel), str(thread_ts)), [])], key=_ts_key)
        latest, oldest = call.params.get("latest"), call.params.get("oldest")
        inclusive = str(call.params.get("inclusive")).lower() in ("1", "true")
        if latest:
            messages = [m for m in messages if _ts_key(m) < float(latest) or (inclusive and m["ts"] == latest)]
        if oldest:  # the thread's parent comes first whatever the range, as Slack lists it
            messages = [
                m for m in messages
                if _ts_key(m) > float(oldest) or (inclusive and m["ts"] == oldest) or m["ts"] == thread_ts
            ]  # fmt: skip
        start, limit = int(call.params.get("cursor") or 0), int(call.params.get("limit") or 1000)
        page = messages[start : start + limit]
        more = start + limit < len(messages)
        metadata = {"next_cursor": str(start + limit) if more else ""}
        return {"ok": True, "messages": page, "has_more": more, "response_metadata": metadata}

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
        """Slack allows the assistant status in assistant and agent threads (DMs) only."""
        error = self.set_status_error or (None if str(call.params.get("channel_id")).startswith("D") else "not_allowed")
        if error:
            call.params["_status"] = error
            return {"ok": False, "error": error}
        return {"ok": True}

    # -- native streaming and the assistant methods -------------------------------------------------------------

    def streamed_in(self, thread_ts: str) -> list[Stream]:
        """The streamed messages in a thread, in order."""
        return [s for s in self.streams.values() if s.thread_ts == thread_ts]

    def _chat_startStream(self, call: ApiCall) -> dict[str, Any]:
        if not self.streaming:
            return self._refuse(call, "unknown_method")
        channel = str(call.params.get("channel"))
        if not channel.startswith("D") and not (
            call.params.get("recipient_user_id") and call.params.get("recipient_team_id")
        ):
            return self._refuse(call, "invalid_arguments")  # outside DMs Slack needs to know the asker
        stream = Stream(channel=channel, thread_ts=call.params.get("thread_ts"))
        error = self._stream_in(stream, call.params)
        if error:
            return self._refuse(call, error)
        ts = self._next_ts()
        call.params["_ts"] = ts
        self.streams[ts] = stream
        return {"ok": True, "channel": channel, "ts": ts}

    def _chat_appendStream(self, call: ApiCall) -> dict[str, Any]:
        return self._stream_more(call, stop=False)

    def _chat_stopStream(self, call: ApiCall) -> dict[str, Any]:
        return self._stream_more(call, stop=True)

    def _stream_more(self, call: ApiCall, *, stop: bool) -> dict[str, Any]:
        if not self.streaming:
            return self._refuse(call, "unknown_method")
        stream = self.streams.get(str(call.params.get("ts")))
        if stream is None or stream.stopped:
            return self._refuse(call, "message_not_in_streaming_state")
        error = self._stream_in(stream, call.params)
        if error:
            return self._refuse(call, error)
        if stop:
            stream.stopped, stream.blocks = True, list(call.params.get("blocks") or [])
        return {"ok": True, "channel": call.params.get("channel"), "ts": call.params.get("ts")}

    @staticmethod
    def _stream_in(stream: Stream, params: dict[str, Any]) -> str | None:
        """Apply a streaming call's ``markdown_text`` or ``chunks`` to ``stream``; an error code, or None."""
        text = str(params.get("markdown_text") or "")
        chunks = params.get("chunks") or []
        if text and chunks:
            return "invalid_arguments"
        tasks: dict[str, str] = {}
        for chunk in chunks:
            if chunk.get("type") == "markdown_text":
                text += str(chunk.get("text") or "")
            elif chunk.get("type") == "task_update" and chunk.get("id") and chunk.get("title"):
                tasks[str(chunk["id"])] = str(chunk.get("status"))
            else:
                return "invalid_chunks"
        if len(text) > STREAM_CALL_LIMIT:
            return "msg_too_long"
        stream.text += text
        stream.tasks |= tasks
        return None

    def _refuse(self, call: ApiCall, error: str) -> dict[str, Any]:
        call.params["_status"] = error
        return {"ok": False, "error": error}

    # -- agent sessions -----------------------------------------------------------------------------------------

    def session_statuses(self, thread_ts: str, *, channel: str = "C1") -> list[str]:
        """Every status the thread's agent session has had, in order (empty: no session)."""
        session = self.sessions.get((channel, thread_ts))
        return [] if session is None else list(session.statuses)

    def _agents_sessions_setStatus(self, call: ApiCall) -> dict[str, Any]:
        """Creates the thread's session on first use (the title only then); statuses change only when told."""
        if self.agent_sessions_error:
            return self._refuse(call, self.agent_sessions_error)
        channel, thread_ts, status = (call.params.get(k) for k in ("channel_id", "thread_ts", "status"))
        if not (channel and thread_ts) or status not in ("processing", "active", "suspended", "closed"):
            return self._refuse(call, "invalid_arguments")
        session = self.sessions.get((channel, thread_ts))
        if session is None:
            title = call.params.get("title")
            session = self.sessions[(channel, thread_ts)] = AgentSession(title=title, titles=[title] if title else [])
        session.statuses.append(status)
        return {"ok": True}

    def _agents_sessions_rename(self, call: ApiCall) -> dict[str, Any]:
        """The session's new title; a thread without a session is ``session_not_found``, as Slack answers."""
        error = self.agent_sessions_error or self.refused_methods.get("agents.sessions.rename")
        if error:
            return self._refuse(call, error)
        if not call.params.get("title") or not 1 <= len(call.params["title"]) <= 200:
            return self._refuse(call, "invalid_arguments")
        session = self.sessions.get((call.params.get("channel_id"), call.params.get("thread_ts")))  # type: ignore[arg-type]
        if session is None:
            return self._refuse(call, "session_not_found")
        session.title = call.params["title"]
        session.titles.append(session.title)
        return {"ok": True, "title": session.title}

    def _assistant_threads_setTitle(self, call: ApiCall) -> dict[str, Any]:
        if "assistant.threads.setTitle" in self.refused_methods:
            return self._refuse(call, self.refused_methods["assistant.threads.setTitle"])
        if not (call.params.get("channel_id") and call.params.get("thread_ts") and call.params.get("title")):
            return self._refuse(call, "invalid_arguments")
        return {"ok": True}

    def _assistant_threads_setSuggestedPrompts(self, call: ApiCall) -> dict[str, Any]:
        prompts = call.params.get("prompts")
        if not call.params.get("channel_id") or not isinstance(prompts, list) or not 0 < len(prompts) <= 4:
            return self._refuse(call, "invalid_arguments")
        if any(not (p.get("title") and p.get("message")) for p in prompts):
            return self._refuse(call, "invalid_arguments")
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

    # -- files upload v2 and DMs (the export command) -----------------------------------------------------------

    def _files_getUploadURLExternal(self, call: ApiCall) -> dict[str, Any]:
        if not call.params.get("filename") or not str(call.params.get("length") or "").isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._ts):08d}"
        return {"ok": True, "file_id": file_id, "upload_url": f"http://127.0.0.1:{self._server.port}/upload/{file_id}"}

    async def _upload(self, request: web.Request) -> web.Response:
        content = await request.read()
        self.uploads[request.match_info["file_id"]] = content
        return web.Response(text=f"OK - {len(content)}")

    def _files_completeUploadExternal(self, call: ApiCall) -> dict[str, Any]:
        files = json.loads(str(call.params.get("files") or "[]"))
        call.params["files"] = files
        if not files or any(f.get("id") not in self.uploads for f in files):
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "files": [{"id": f["id"], "title": f.get("title") or ""} for f in files]}

    def shared_files(self) -> list[tuple[str, str, bytes]]:
        """(channel, title, bytes) of every file an upload completed and shared, in order."""
        return [
            (str(call.params.get("channel_id")), str(f.get("title")), self.uploads[f["id"]])
            for call in self.calls_to("files.completeUploadExternal")
            if "_status" not in call.params
            for f in call.params["files"]
        ]

    def _conversations_open(self, call: ApiCall) -> dict[str, Any]:
        users = str(call.params.get("users") or "")
        if not users or "," in users:
            return {"ok": False, "error": "not_enough_users" if not users else "too_many_users"}
        return {"ok": True, "channel": {"id": f"D{users}"}}

    def ephemerals(self, *, user: str | None = None) -> list[dict[str, Any]]:
        """The chat.postEphemeral calls (their params), optionally only those for ``user``."""
        return [c.params for c in self.calls_to("chat.postEphemeral") if user is None or c.params.get("user") == user]


def _ts_key(message: dict[str, Any]) -> float:
    return float(message["ts"])


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


class AgentPayloads:
    """Bodies of Slack's AI-app features: feedback clicks, the assistant panel, the messages tab."""

    @staticmethod
    def feedback_click(
        value: str, *, user: str = "UALICE", channel: str = "C1", message_ts: str, thread_ts: str
    ) -> dict[str, Any]:
        """A press on one of the feedback buttons (``value`` is that button's value) under a message."""
        body = Payloads.click(value, user=user, channel=channel, message_ts=message_ts, thread_ts=thread_ts)
        body["actions"] = [
            {
                "type": "feedback_buttons",
                "action_id": "tk-feedback",
                "block_id": "tk-feedback-x",
                "value": value,
                "text": {"type": "plain_text", "text": "👍"},
                "action_ts": str(time.time()),
            }
        ]
        return body

    @staticmethod
    def assistant_thread_started(*, channel: str = "D1", thread_ts: str, user: str = "UALICE") -> dict[str, Any]:
        return {
            "type": "assistant_thread_started",
            "assistant_thread": {
                "user_id": user,
                "context": {"channel_id": "C1", "team_id": TEAM, "enterprise_id": None},
                "channel_id": channel,
                "thread_ts": thread_ts,
            },
            "event_ts": Payloads.ts(),
        }

    @staticmethod
    def session_stopped(
        *, thread_ts: str, channel: str = "C1", user: str = "UALICE", streams: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """Someone pressed Slack's Stop on the thread's agent session; ``streams`` Slack stopped itself."""
        return {
            "type": "agent_session_stopped",
            "channel": channel,
            "thread_ts": thread_ts,
            "user": user,
            "streaming_message_ts": list(streams),
            "event_ts": Payloads.ts(),
        }

    @staticmethod
    def messages_tab_opened(*, channel: str = "D1", user: str = "UALICE") -> dict[str, Any]:
        return {
            "type": "app_home_opened",
            "user": user,
            "channel": channel,
            "tab": "messages",
            "event_ts": Payloads.ts(),
        }


def message_shortcut(
    callback_id: str, *, message_ts: str, thread_ts: str | None, user: str = "UALICE", channel: str = "C1"
) -> dict[str, Any]:
    """A message shortcut used on a message (``message_action``), as Slack sends it over Socket Mode or HTTP."""
    message: dict[str, Any] = {"type": "message", "user": "UALICE", "ts": message_ts, "text": "a message"}
    if thread_ts:
        message["thread_ts"] = thread_ts
    return {
        "type": "message_action",
        "token": "verification-token",
        "action_ts": str(time.time()),
        "team": {"id": TEAM, "domain": "fake"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "channel": {"id": channel, "name": "general"},
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": "trigger",
        "response_url": "http://127.0.0.1:1/unused",
        "message_ts": message_ts,
        "message": message,
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
