"""A loopback Discord: REST under /api/v10 and a gateway websocket, enough for an unmodified discord.py.

Point discord.py at it with ``discord.http.Route.BASE = fake.api_base`` and
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)`` (the adapter does this from
DISCORD_API_BASE / DISCORD_GATEWAY_URL). It keeps one guild with one text channel, assigns snowflakes, records
every REST call, and lets a test dispatch gateway events: MESSAGE_CREATE / UPDATE / DELETE, THREAD_CREATE and
INTERACTION_CREATE (button clicks, slash commands and their autocomplete), to whichever clients are connected
(several, across restarts). It keeps the application commands a bulk overwrite registered, and the files sent
with multipart bodies (an export in an interaction follow-up). Messages can be replies (``replying_to``): served
with the message they answer, as Discord does, and readable one by one (``GET /channels/{id}/messages/{id}``).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.server import LoopbackServer

GUILD = "900000000000000001"
CHANNEL = "900000000000000002"
APP_ID = "900000000000000003"
BOT_ID = APP_ID
VOICE_MESSAGE = 1 << 13  # a message's IS_VOICE_MESSAGE flag
BOT_ROLE = "900000000000000004"  # the role Discord creates for a bot when it joins a guild
ALL_PERMISSIONS = "2251799813685247"
MESSAGE_CONTENT_FLAG = 1 << 19  # the application flag GATEWAY_MESSAGE_CONTENT: the intent is enabled


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def user(user_id: str, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": user_id,
        "username": name.lower(),
        "global_name": name,
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
    }


BOT_USER = user(BOT_ID, "threadkeeper", bot=True)
ALICE = user("800000000000000001", "Alice")
BOB = user("800000000000000002", "Bob")


@dataclass
class RestCall:
    method: str
    path: str
    json: Any
    at: float
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class UploadedFile:
    """A file part of a multipart REST call (``files[n]``), as received."""

    path: str
    filename: str
    content: bytes


@dataclass
class Fault:
    """The next ``times`` calls matching ``method`` and ``pattern`` get this error instead of an answer."""

    method: str
    pattern: str
    status: int
    code: int
    times: int


@dataclass
class FakeDiscord:
    deny_message_content: bool = False
    calls: list[RestCall] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    threads: dict[str, dict[str, Any]] = field(default_factory=dict)
    roles: dict[str, list[str]] = field(default_factory=dict)
    identified: int = 0
    identified_at: list[float] = field(default_factory=list)
    identified_shards: list[list[int] | None] = field(default_factory=list)  # IDENTIFY's [shard_id, count]
    faults: list[Fault] = field(default_factory=list)
    app_commands: list[dict[str, Any]] = field(default_factory=list)
    uploads: list[UploadedFile] = field(default_factory=list)
    cdn_files: dict[str, bytes] = field(default_factory=dict)  # attachment name -> what the CDN serves
    cdn_faults: dict[str, int | float] = field(default_factory=dict)  # name -> HTTP status, or seconds of silence
    cdn_downloads: list[str] = field(default_factory=list)  # names the bot downloaded, in order
    link_generation: int = 0  # attachment URLs signed before this one have expired (``expire_attachment_links``)
    _sockets: list[web.WebSocketResponse] = field(default_factory=list)
    _seq: Any = field(default_factory=lambda: itertools.count(1))
    last_seq: int = 0  # the sequence number of the last dispatch sent: what "every event received" means
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _server: LoopbackServer = field(default_factory=LoopbackServer)

    # -- lifecycle ------------------------------------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self._server.port}/gateway"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway/", self._gateway)
        app.router.add_get("/attachments/{name}", self._attachment)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        await self._server.start(app)

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        await self._server.stop()

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def snowflake(self) -> str:
        return str(1_000_000_000_000_000_000 + next(self._ids) * 1000)

    # -- what the bot did -----------------------------------------------------------------------------------

    def calls_to(self, method: str, pattern: str) -> list[RestCall]:
        regex = re.compile(pattern)
        return [c for c in self.calls if c.method == method and regex.fullmatch(c.path)]

    def sent_in(self, channel_id: str) -> list[dict[str, Any]]:
        """Messages the bot posted in a channel or thread, in order, as they look now (edits applied)."""
        return [m for m in self.messages.values() if m["channel_id"] == channel_id and m["author"]["id"] == BOT_ID]

    def texts_in(self, channel_id: str) -> list[str]:
        """The bot's replies and notes in a channel: cards left out (an answer's Stop button is no card)."""
        return [m["content"] for m in self.sent_in(channel_id) if not _card_buttons(m)]

    def cards_in(self, channel_id: str) -> list[dict[str, Any]]:
        return [m for m in self.sent_in(channel_id) if "Where were we?" in (m.get("content") or "")]

    def _next_seq(self) -> int:
        self.last_seq = next(self._seq)
        return self.last_seq

    # -- gateway --------------------------------------------------------------------------------------------

    @property
    def connected(self) -> int:
        return len([ws for ws in self._sockets if not ws.closed])

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        frame = json.dumps({"op": 0, "t": event, "s": self._next_seq(), "d": data})
        for ws in [ws for ws in self._sockets if not ws.closed]:
            await ws.send_str(frame)

    async def drop_connections(self, *, code: int = 4000) -> None:
        """Close every gateway connection as Discord does on an outage; clients reconnect (RESUME is refused)."""
        for ws in [ws for ws in self._sockets if not ws.closed]:
            await ws.close(code=code, message=b"fake outage")

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None}))
        async for frame in ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            payload = json.loads(frame.data)
            if payload["op"] == 1:
                await ws.send_str(json.dumps({"op": 11, "d": None, "s": None, "t": None}))
            elif payload["op"] == 2:
                if self.deny_message_content and payload["d"]["intents"] & (1 << 15):
                    await ws.close(code=4014, message=b"Disallowed intent(s).")
                    break
                self.identified += 1
                self.identified_at.append(time.monotonic())
                self.identified_shards.append(payload["d"].get("shard"))
                await self._send_ready(ws)
            elif payload["op"] == 6:
                await ws.send_str(json.dumps({"op": 9, "d": False, "s": None, "t": None}))
        return ws

    async def _send_ready(self, ws: web.WebSocketResponse) -> None:
        ready = {
            "v": 10,
            "user": BOT_USER,
            "guilds": [{"id": GUILD, "unavailable": True}],
            "session_id": "session",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": APP_ID, "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
        }
        await ws.send_str(json.dumps({"op": 0, "t": "READY", "s": self._next_seq(), "d": ready}))
        await ws.send_str(json.dumps({"op": 0, "t": "GUILD_CREATE", "s": self._next_seq(), "d": self._guild()}))

    def _guild(self) -> dict[str, Any]:
        return {
            "id": GUILD,
            "name": "Fake Guild",
            "icon": None,
            "owner_id": ALICE["id"],
            "unavailable": False,
            "roles": [
                self._role(GUILD, "@everyone"),
                self._role(BOT_ROLE, "threadkeeper") | {"managed": True, "tags": {"bot_id": BOT_ID}},
                *(self._role(r, f"role {r}") for r in self._role_ids()),
            ],
            "channels": [
                {
                    "id": CHANNEL,
                    "type": 0,
                    "guild_id": GUILD,
                    "name": "general",
                    "position": 0,
                    "permission_overwrites": [],
                    "nsfw": False,
                    "parent_id": None,
                    "topic": None,
                    "rate_limit_per_user": 0,
                    "last_message_id": None,
                }
            ],
            "threads": list(self.threads.values()),
            "members": [self.member(BOT_USER)],
            "member_count": 3,
            "large": False,
            "features": [],
            "emojis": [],
            "stickers": [],
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "system_channel_flags": 0,
            "joined_at": now_iso(),
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _role_ids(self) -> list[str]:
        return sorted({role for roles in self.roles.values() for role in roles})

    @staticmethod
    def _role(role_id: str, name: str) -> dict[str, Any]:
        return {
            "id": role_id,
            "name": name,
            "permissions": ALL_PERMISSIONS,
            "position": 0 if role_id == GUILD else 1,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }

    def member(self, who: dict[str, Any]) -> dict[str, Any]:
        return {
            "user": who,
            "roles": [BOT_ROLE] if who["id"] == BOT_ID else self.roles.get(who["id"], []),
            "joined_at": now_iso(),
            "deaf": False,
            "mute": False,
            "flags": 0,
        }

    # -- building and sending events ------------------------------------------------------------------------

    def message_payload(
        self,
        *,
        channel_id: str,
        author: dict[str, Any],
        content: str,
        guild: bool = True,
        mentions: list[dict[str, Any]] | None = None,
        mention_roles: list[str] | None = None,
        message_id: str | None = None,
        attachments: list[dict[str, Any]] | None = None,
        replying_to: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A message as Discord stores it; ``replying_to``: a reply to that message (type 19 with a
        ``message_reference``; the message it answers is sent along when served, see :meth:`served`)."""
        data: dict[str, Any] = {
            "id": message_id or self.snowflake(),
            "channel_id": channel_id,
            "author": author,
            "content": content,
            "timestamp": now_iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": mentions or [],
            "mention_roles": mention_roles or [],
            "attachments": attachments or [],
            "embeds": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
            "components": [],
        }
        if guild:
            data["guild_id"] = GUILD
            data["member"] = {k: v for k, v in self.member(author).items() if k != "user"}
        if replying_to is not None:
            data["type"] = 19
            data["message_reference"] = {"type": 0, "message_id": replying_to["id"], "channel_id": channel_id}
            if guild:
                data["message_reference"]["guild_id"] = GUILD
        return data

    def served(self, message: dict[str, Any]) -> dict[str, Any]:
        """``message`` as Discord sends it: a reply carries the message it answers as ``referenced_message`` (null
        once that one is deleted), one level deep."""
        reference = message.get("message_reference")
        if reference is None or message["type"] != 19:
            return message
        answered = self.messages.get(reference["message_id"])
        return message | {"referenced_message": None if answered is None else dict(answered)}

    async def user_says(
        self,
        content: str,
        *,
        channel_id: str = CHANNEL,
        author: dict[str, Any] = ALICE,
        mention_bot: bool = False,
        mention_bot_role: bool = False,
        guild: bool = True,
        message_id: str | None = None,
        attachments: list[dict[str, Any]] | None = None,
        flags: int = 0,
        replying_to: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A person writes; ``mention_bot`` / ``mention_bot_role`` prefix a mention of the bot or its role;
        ``flags`` are the message's (``VOICE_MESSAGE`` for a voice message); ``replying_to``: a reply to it."""
        text = f"<@{BOT_ID}> {content}" if mention_bot else f"<@&{BOT_ROLE}> {content}" if mention_bot_role else content
        data = self.message_payload(
            channel_id=channel_id,
            author=author,
            content=text,
            guild=guild,
            mentions=[BOT_USER] if mention_bot else [],
            mention_roles=[BOT_ROLE] if mention_bot_role else [],
            message_id=message_id,
            attachments=attachments,
            replying_to=replying_to,
        )
        data["flags"] = flags
        self.messages[data["id"]] = data
        await self.dispatch("MESSAGE_CREATE", self.served(data))
        return data

    async def user_edits(self, message: dict[str, Any], content: str) -> None:
        message["content"] = content
        message["edited_timestamp"] = now_iso()
        await self.dispatch("MESSAGE_UPDATE", dict(message))

    async def link_preview_arrives(self, message: dict[str, Any]) -> None:
        """Discord adds an embed to a message: a MESSAGE_UPDATE with the same text and no edited_timestamp."""
        message["embeds"] = [{"type": "link", "url": "https://example.invalid/", "title": "A page"}]
        await self.dispatch("MESSAGE_UPDATE", dict(message))

    async def user_deletes(self, message: dict[str, Any]) -> None:
        """The message is gone (Discord serves it no more) and MESSAGE_DELETE names it and its channel."""
        self.messages.pop(message["id"], None)
        payload = {"id": message["id"], "channel_id": message["channel_id"]}
        if "guild_id" in message:
            payload["guild_id"] = message["guild_id"]
        await self.dispatch("MESSAGE_DELETE", payload)

    async def moderator_bulk_deletes(self, messages: list[dict[str, Any]]) -> None:
        """MESSAGE_DELETE_BULK, as Discord sends it for a purge of several messages in one channel."""
        for message in messages:
            self.messages.pop(message["id"], None)
        payload: dict[str, Any] = {"ids": [m["id"] for m in messages], "channel_id": messages[0]["channel_id"]}
        if "guild_id" in messages[0]:
            payload["guild_id"] = messages[0]["guild_id"]
        await self.dispatch("MESSAGE_DELETE_BULK", payload)

    async def click(self, custom_id: str, *, message: dict[str, Any], who: dict[str, Any] = ALICE) -> str:
        """Press a button on a message; return the interaction id."""
        interaction_id = self.snowflake()
        channel = self.threads.get(message["channel_id"]) or {
            "id": message["channel_id"],
            "type": 0,
            "guild_id": GUILD,
            "name": "general",
        }
        await self.dispatch(
            "INTERACTION_CREATE",
            {
                "id": interaction_id,
                "application_id": APP_ID,
                "type": 3,
                "token": f"token-{interaction_id}",
                "version": 1,
                "guild_id": GUILD,
                "channel_id": message["channel_id"],
                "channel": channel,
                "member": self.member(who) | {"permissions": ALL_PERMISSIONS},
                "message": message,
                "data": {"custom_id": custom_id, "component_type": 2},
                "app_permissions": ALL_PERMISSIONS,
                "locale": "en-US",
                "guild_locale": "en-US",
                "entitlements": [],
                "authorizing_integration_owners": {},
                "context": 0,
                "attachment_size_limit": 8_388_608,
            },
        )
        return interaction_id

    # -- application (slash) commands ------------------------------------------------------------------------

    def _overwrite_commands(self, body: Any) -> list[dict[str, Any]]:
        """PUT /applications/{id}/commands: the whole list is replaced, each command gets an id and a version."""
        self.app_commands = [
            {"id": self.snowflake(), "application_id": APP_ID, "version": "1", "type": 1} | command
            for command in body or []
        ]
        return self.app_commands

    def app_command(self, name: str) -> dict[str, Any]:
        found = [c for c in self.app_commands if c["name"] == name]
        if not found:
            raise AssertionError(f"no application command /{name} was registered: {self.app_commands}")
        return found[0]

    def _command_interaction(
        self, kind: int, name: str, options: list[dict[str, Any]], *, channel_id: str, who: dict[str, Any], dm: bool
    ) -> dict[str, Any]:
        interaction_id = self.snowflake()
        command = self.app_command(name)
        data: dict[str, Any] = {
            "id": interaction_id,
            "application_id": APP_ID,
            "type": kind,
            "token": f"token-{interaction_id}",
            "version": 1,
            "channel_id": channel_id,
            "data": {"id": command["id"], "name": name, "type": 1, "options": options},
            "app_permissions": ALL_PERMISSIONS,
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": 8_388_608,
        }
        if dm:
            recipients = [who]
            channel = {"id": channel_id, "type": 1, "recipients": recipients, "last_message_id": None}
            return data | {"user": who, "channel": channel, "context": 1, "authorizing_integration_owners": {}}
        channel = self.threads.get(channel_id) or {"id": channel_id, "type": 0, "guild_id": GUILD, "name": "general"}
        return data | {
            "guild_id": GUILD,
            "guild_locale": "en-US",
            "member": self.member(who) | {"permissions": ALL_PERMISSIONS},
            "channel": channel,
            "context": 0,
            "authorizing_integration_owners": {"0": GUILD},
        }

    async def use_command(
        self,
        name: str,
        *,
        channel_id: str,
        options: dict[str, str] | None = None,
        who: dict[str, Any] = ALICE,
        dm: bool = False,
    ) -> str:
        """Someone runs ``/name`` in a thread (or a DM, ``dm=True``); return the interaction id."""
        typed = [{"name": k, "type": 3, "value": v} for k, v in (options or {}).items()]
        payload = self._command_interaction(2, name, typed, channel_id=channel_id, who=who, dm=dm)
        await self.dispatch("INTERACTION_CREATE", payload)
        return str(payload["id"])

    async def autocomplete(
        self, name: str, option: str, typed: str, *, channel_id: str, who: dict[str, Any] = ALICE
    ) -> str:
        """Someone is typing ``typed`` into ``option`` of ``/name``; return the interaction id."""
        focused = [{"name": option, "type": 3, "value": typed, "focused": True}]
        payload = self._command_interaction(4, name, focused, channel_id=channel_id, who=who, dm=False)
        await self.dispatch("INTERACTION_CREATE", payload)
        return str(payload["id"])

    def followups_of(self, interaction_id: str) -> list[RestCall]:
        """Follow-up messages sent with this interaction's token (webhook posts), in order."""
        return self.calls_to("POST", rf"/webhooks/{APP_ID}/token-{interaction_id}")

    def callbacks(self, interaction_id: str) -> list[RestCall]:
        return self.calls_to("POST", rf"/interactions/{interaction_id}/.+/callback")

    def followups(self) -> list[RestCall]:
        return self.calls_to("POST", rf"/webhooks/{APP_ID}/[^/]+")

    # -- REST -----------------------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        body: Any = None
        if request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
            elif request.content_type.startswith("multipart/"):
                body = await self._multipart_json(request)
        self.calls.append(RestCall(request.method, path, body, time.monotonic(), dict(request.query)))
        fault = self._fault_for(request.method, path)
        if fault is not None:
            status, payload = fault.status, {"message": "fake Discord fault", "code": fault.code}
        else:
            status, payload = self._route(request.method, path, body or {}, dict(request.query))
        if payload is None:
            return web.Response(status=status)
        return web.Response(status=status, body=json.dumps(payload), headers={"content-type": "application/json"})

    def fail(self, method: str, pattern: str, *, status: int, code: int = 0, times: int = 1) -> None:
        """Answer the next ``times`` calls to ``method`` on a path matching ``pattern`` with an error."""
        self.faults.append(Fault(method, pattern, status, code, times))

    def _fault_for(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.method == method and re.fullmatch(fault.pattern, path):
                fault.times -= 1
                return fault
        return None

    async def _multipart_json(self, request: web.Request) -> Any:
        reader = await request.multipart()
        payload = None
        async for part in reader:
            name = getattr(part, "name", None)
            if name == "payload_json":
                payload = json.loads(await part.text())  # type: ignore[union-attr]
            elif name and name.startswith("files["):
                content = bytes(await part.read())  # type: ignore[union-attr]
                filename = getattr(part, "filename", None) or name
                self.uploads.append(UploadedFile("/" + request.match_info["path"], filename, content))
        return payload

    def _route(self, method: str, path: str, body: dict[str, Any], query: dict[str, str]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        match method, parts:
            case "GET", ["users", "@me"]:
                return 200, BOT_USER
            case "GET", ["oauth2", "applications", "@me"]:
                return 200, {
                    "id": APP_ID,
                    "name": "threadkeeper",
                    "icon": None,
                    "description": "",
                    "bot_public": True,
                    "bot_require_code_grant": False,
                    "owner": ALICE,
                    "verify_key": "0" * 64,
                    "flags": 0 if self.deny_message_content else MESSAGE_CONTENT_FLAG,
                    "team": None,
                    "summary": "",
                }
            case "GET", ["gateway"] | ["gateway", "bot"]:
                return 200, {
                    "url": self.gateway_url,
                    "shards": 1,
                    "session_start_limit": {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1},
                }
            case "POST", ["channels", channel_id, "typing"]:
                return 204, None
            case "GET", ["channels", channel_id, "messages"]:
                return 200, self._history(channel_id, query)
            case "POST", ["channels", channel_id, "messages"]:
                return 200, self._store_bot_message(channel_id, body)
            case "GET", ["channels", channel_id, "messages", message_id]:
                return self._message(channel_id, message_id)
            case "PATCH", ["channels", channel_id, "messages", message_id]:
                return self._edit(message_id, body)
            case "DELETE", ["channels", channel_id, "messages", message_id]:
                self.messages.pop(message_id, None)
                return 204, None
            case "POST", ["channels", channel_id, "messages", message_id, "threads"]:
                return 201, self._create_thread(channel_id, message_id, body)
            case "PATCH", ["channels", channel_id] if channel_id in self.threads:
                self.threads[channel_id] |= {k: v for k, v in body.items() if k == "name"}
                return 200, self.threads[channel_id]
            case "GET", ["channels", channel_id]:
                if channel_id in self.threads:
                    return 200, self.threads[channel_id]
                return 200, {
                    "id": channel_id,
                    "type": 0,
                    "guild_id": GUILD,
                    "name": "general",
                    "position": 0,
                    "permission_overwrites": [],
                    "parent_id": None,
                }
            case "PUT", ["applications", _app, "commands"]:
                return 200, self._overwrite_commands(body)
            case "POST", ["interactions", interaction_id, _token, "callback"]:
                return 200, {
                    "interaction": {"id": interaction_id, "type": 3},
                    "resource": {"type": body.get("type", 6)},
                }
            case "POST", ["webhooks", _app, _token]:
                return 200, self._store_bot_message("0", body) | {"webhook_id": APP_ID}
            case "PATCH", ["webhooks", _app, _token, "messages", _message]:
                return 200, self._store_bot_message("0", body)
        return 404, {"message": f"fake Discord has no route {method} {path}", "code": 0}

    def _history(self, channel_id: str, query: dict[str, str]) -> list[dict[str, Any]]:
        """A channel's messages as Discord returns them: newest first, the ``limit`` nearest the cursor."""
        after, before = int(query.get("after", 0)), int(query.get("before", 1 << 63))
        found = sorted(
            (m for m in self.messages.values() if m["channel_id"] == channel_id and after < int(m["id"]) < before),
            key=lambda m: int(m["id"]),
        )
        limit = int(query.get("limit", 50))
        window = found[:limit] if "after" in query else found[-limit:]
        return [self.served(m) for m in reversed(window)]

    def _message(self, channel_id: str, message_id: str) -> tuple[int, Any]:
        """One message as Discord returns it now, its attachments' URLs signed afresh (``expire_attachment_links``)."""
        message = self.messages.get(message_id)
        if message is None or message["channel_id"] != channel_id:
            return 404, {"message": "Unknown Message", "code": 10008}
        return 200, self.served(message) | {"attachments": [self._signed(a) for a in message.get("attachments") or []]}

    def expire_attachment_links(self) -> None:
        """Every attachment URL handed out so far stops working (Discord signs them with an expiry); a message
        fetched again gets new ones."""
        self.link_generation += 1

    def _signed(self, attachment: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base}/attachments/{attachment['filename']}?ex={self.link_generation}"
        return attachment | {"url": url, "proxy_url": url}

    def deleted_while_bot_was_away(self, message: dict[str, Any]) -> None:
        """A message deleted while the bot was not connected: Discord no longer has it, and told nobody."""
        self.messages.pop(message["id"], None)

    def wrote_while_bot_was_away(
        self,
        content: str,
        *,
        channel_id: str,
        author: dict[str, Any] = ALICE,
        replying_to: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A message Discord stored but never delivered to the bot (it was not connected, or the message did not
        concern it); ``replying_to``: a reply to that message."""
        data = self.message_payload(channel_id=channel_id, author=author, content=content, replying_to=replying_to)
        self.messages[data["id"]] = data
        return data

    def _store_bot_message(self, channel_id: str, body: dict[str, Any]) -> dict[str, Any]:
        data = self.message_payload(
            channel_id=channel_id,
            author=BOT_USER,
            content=body.get("content") or "",
            guild=channel_id in self.threads or channel_id == CHANNEL,
        )
        data["components"] = body.get("components") or []
        data["embeds"] = body.get("embeds") or []
        data["flags"] = body.get("flags") or 0
        self.messages[data["id"]] = data
        return data

    def _edit(self, message_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        message = self.messages.get(message_id)
        if message is None:
            return 404, {"message": "Unknown Message", "code": 10008}
        for key in ("content", "components", "embeds"):
            if key in body:
                message[key] = body[key] if body[key] is not None else ([] if key != "content" else "")
        message["edited_timestamp"] = now_iso()
        return 200, message

    def existing_thread(self, thread_id: str, name: str, *, owner: dict[str, Any] = ALICE) -> dict[str, Any]:
        """A thread people made before the bot joined it (it is in the guild's thread list at READY)."""
        thread = self._thread_payload(thread_id, CHANNEL, {"name": name}) | {"owner_id": owner["id"]}
        self.threads[thread_id] = thread
        return thread

    def _create_thread(self, channel_id: str, message_id: str, body: dict[str, Any]) -> dict[str, Any]:
        thread = self._thread_payload(message_id, channel_id, body)
        self.threads[thread["id"]] = thread
        asyncio.get_running_loop().create_task(self.dispatch("THREAD_CREATE", thread | {"newly_created": True}))
        return thread

    def _thread_payload(self, thread_id: str, channel_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": thread_id,
            "type": 11,
            "guild_id": GUILD,
            "parent_id": channel_id,
            "owner_id": BOT_ID,
            "name": body.get("name", "thread"),
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "flags": 0,
            "total_message_sent": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": body.get("auto_archive_duration", 1440),
                "archive_timestamp": now_iso(),
                "locked": False,
            },
        }

    async def _attachment(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.cdn_downloads.append(name)
        if int(request.query.get("ex", "0")) < self.link_generation:
            return web.Response(status=404, text="This content is no longer available.")
        fault = self.cdn_faults.get(name)
        if isinstance(fault, int):
            return web.Response(status=fault, text="not found")
        if isinstance(fault, float):
            await asyncio.sleep(fault)  # a CDN that never answers within the bot's timeout
        return web.Response(body=self.cdn_files.get(name, f"contents of {name}".encode()))

    def attachment_file(self, name: str, data: bytes, *, content_type: str, size: int | None = None) -> dict[str, Any]:
        """An attachment the CDN serves as ``data``; ``size`` is what the message claims (default: the truth)."""
        self.cdn_files[name] = data
        return self.attachment(name, content_type=content_type, size=len(data) if size is None else size)

    def voice_message(self, data: bytes, *, duration_s: float = 3.5) -> dict[str, Any]:
        """A voice message's attachment, as the Discord client records one: Ogg Opus with a duration and a waveform
        (send it with ``flags=VOICE_MESSAGE``)."""
        return self.attachment_file("voice-message.ogg", data, content_type="audio/ogg") | {
            "duration_secs": duration_s,
            "waveform": base64.b64encode(bytes(range(0, 256, 8))).decode(),
        }

    def attachment(self, name: str, *, content_type: str = "text/plain", size: int = 20) -> dict[str, Any]:
        return {
            "id": self.snowflake(),
            "filename": name,
            "size": size,
            "content_type": content_type,
            "url": f"{self.base}/attachments/{name}?ex={self.link_generation}",
            "proxy_url": f"{self.base}/attachments/{name}?ex={self.link_generation}",
        }


def _card_buttons(message: dict[str, Any]) -> list[str]:
    """The custom ids of a message's buttons, the Stop button of an answer being written left out."""
    ids = [str(b.get("custom_id")) for row in message.get("components") or [] for b in row.get("components") or []]
    return [i for i in ids if not i.startswith("tk-stop:")]
