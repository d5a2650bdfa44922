"""SlackAdapter: slack-bolt's AsyncApp wired to the ThreadRouter, in Socket Mode or HTTP mode.

An event is acknowledged only after its listener has handed it to the router, which logs it before returning
(bolt's ``process_before_response``): an event acknowledged and then lost to a crash would never come again,
while one that was not acknowledged is redelivered by Slack and the log's unique constraints make the second
delivery harmless. Listeners therefore only translate (``translate.py``) and call the router, which answers in
its own tasks; everything else that talks to Slack on the way in (a button's outcome, a polite refusal) runs
after the ack in tasks of this adapter. The only Web API calls before an event's ack are a users.info
lookup (cached an hour per user, bounded in time: ``reading/names.py``) and, when the router decides a thread
needs one, posting the card. A mention that brings the bot into a thread it has no log for is logged and
acknowledged like any message; the thread's earlier messages (``reading/history.py``) are read after the ack
and logged before it (``bots/router/joining.py``), so a long thread or a rate limit never holds the ack up.
The allowlists (``access.py``) are a global bolt middleware; the router decides everything else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bots.config import ConfigError, Settings
from bots.router.threads import ThreadRouter
from bots.seam.messages import IncomingMessage, utc_now
from bots.slack import translate
from bots.slack.access import AllowlistGate, checks_from
from bots.slack.agent_events import AgentEvents
from bots.slack.buttons import SlackButtons
from bots.slack.errors import slack_error
from bots.slack.feedback import FEEDBACK_ACTION
from bots.slack.install.distribution import (
    INSTALL_PATH,
    REDIRECT_PATH,
    UNINSTALL_EVENTS,
    SlackDistribution,
    one_workspace_client,
)
from bots.slack.install.installations import InstallationRows, StateRows
from bots.slack.install.outbox import WorkspaceOutbox
from bots.slack.install.shared_channels import KeeperRows
from bots.slack.install.workspaces import acting, request_scope
from bots.slack.outbox import SlackOutbox
from bots.slack.reading.history import SlackHistory
from bots.slack.reading.names import DisplayNames
from bots.slack.shortcuts import SlackCommands

log = logging.getLogger(__name__)

REQUIRED_SCOPES = (
    "app_mentions:read",
    "assistant:write",
    "chat:write",
    "channels:history",
    "groups:history",
    "im:history",
    "users:read",
    "files:write",  # the export command's file (files upload v2)
    "im:write",  # ... sent to the asker's DM with the bot (conversations.open)
    "files:read",  # download the files shared in its threads (url_private)
)
LISTENED_EVENTS = (
    "agent_session_stopped",
    "app_home_opened",
    "app_mention",
    "assistant_thread_context_changed",
    "assistant_thread_started",
)
MESSAGE_EVENTS = ("message.channels", "message.groups", "message.im")  # what "message" subscribes to
# The Events API subscriptions; slack-manifest.yml asks for exactly these (the uninstall events: OAuth mode only).
EVENTS = LISTENED_EVENTS + MESSAGE_EVENTS + UNINSTALL_EVENTS
STOP_GRACE_S = 20.0
HTTP_SHUTDOWN_TIMEOUT_S = 5.0
SOCKET_PING_INTERVAL_S = 10.0  # how often the Socket Mode client checks its connection (and reconnects)
LOADING_MESSAGES = ("Reading the thread…", "Thinking it over…", "Putting an answer together…")


class SlackAdapter:
    """PlatformAdapter for Slack."""

    name = "slack"

    def __init__(
        self,
        *,
        settings: Settings,
        router: ThreadRouter,
        installations: InstallationRows | None = None,
        oauth_states: StateRows | None = None,
        shared_channels: KeeperRows | None = None,
    ) -> None:
        self._settings = settings
        self._router = router
        self._socket_mode = settings.slack_app_token is not None
        signing_secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
        self._own_user_id: str | None = None
        # Installed in many workspaces ("Add to Slack", bots/slack/install/): each call with its workspace's token.
        self._distribution: SlackDistribution | None = None
        app_args: dict[str, Any] = {}
        if settings.slack_distributed:
            self._distribution = SlackDistribution(
                settings=settings,
                installations=installations,
                oauth_states=oauth_states,
                shared_channels=shared_channels,
                clock=utc_now,
            )
            self.client: AsyncWebClient = self._distribution.client
            self._file_headers: dict[str, str] = {}
            app_args = {"oauth_settings": self._distribution.oauth_settings, "authorize": self._distribution.authorize}
        else:
            self.client, self._file_headers = one_workspace_client(
                settings, socket_mode=self._socket_mode, signing_secret=signing_secret
            )
        # Slack answers 429 with Retry-After when a channel gets more than about a message a second.
        self.client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
        self.names = DisplayNames(self.client)
        self.app = AsyncApp(
            client=self.client,
            signing_secret=signing_secret,
            request_verification_enabled=signing_secret is not None,
            ignoring_self_events_enabled=True,
            # Acknowledge an event only after the listener has logged it: an event acked and then lost to a
            # crash would never be redelivered. Listeners return fast; slow work runs in router tasks.
            process_before_response=True,
            raise_error_for_unhandled_request=False,
            **app_args,
        )
        self.outbox = SlackOutbox(
            self.client, loading_messages=LOADING_MESSAGES, prompts=settings.slack_suggested_prompts
        )
        self.agent = AgentEvents(
            router=router,
            outbox=self.outbox,
            threads=self.outbox.threads,
            after_ack=self._after_ack,
            named=self.names.named,
        )
        self._buttons = SlackButtons(
            router=router, outbox=self.outbox, after_ack=self._after_ack, named=self.names.named
        )
        self._checks = checks_from(settings)
        self._gate = AllowlistGate(
            checks=self._checks, outbox=self.outbox, after_ack=self._after_ack, bot_user_id=lambda: self.bot_user_id
        )
        self.history = SlackHistory(
            self.client,
            checks=self._checks,
            bot_user_id=lambda: self.bot_user_id,
            display_name=self.names.display_name,
            download_headers=self._download_headers,
        )
        self._after_ack_tasks: set[asyncio.Task[None]] = set()
        self._socket: AsyncSocketModeHandler | None = None
        self._runner: web.AppRunner | None = None
        self._commands = SlackCommands(
            client=self.client,
            router=router,
            after_ack=lambda work: self._after_ack(work, what="an in-thread command"),
            display_name=self.names.display_name,
            bot_user_id=lambda: self.bot_user_id,
        )
        self._register()

    @property
    def bot_user_id(self) -> str | None:
        """The bot's user id in the workspace of the request being handled (one workspace: the only one)."""
        where = acting()
        return where.bot_user_id if where is not None and where.bot_user_id else self._own_user_id

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._distribution is None:
            await self._verify_token()
        else:
            count = await self._distribution.check_key()
            log.info("Slack: installed in %d workspace(s); new ones through %s", count, INSTALL_PATH)
        outbox = self.outbox if self._distribution is None else WorkspaceOutbox(self.outbox)
        self._router.register_outbox(translate.PLATFORM, outbox)
        self._router.register_history(translate.PLATFORM, self.history)
        self._router.register_files(translate.PLATFORM, self.history)
        if self._socket_mode:
            assert self._settings.slack_app_token is not None
            self._socket = AsyncSocketModeHandler(
                self.app, self._settings.slack_app_token.get_secret_value(), ping_interval=SOCKET_PING_INTERVAL_S
            )
            await self._socket.connect_async()
            log.info("Slack connected in Socket Mode")
        else:
            web_app = web.Application()
            web_app.router.add_post("/slack/events", self._http_event)
            if self._distribution is not None:
                web_app.router.add_get(INSTALL_PATH, self._http_oauth)
                web_app.router.add_get(REDIRECT_PATH, self._http_oauth)
            web_app.router.add_get("/healthz", _healthz)
            self._runner = web.AppRunner(web_app, handle_signals=False, shutdown_timeout=HTTP_SHUTDOWN_TIMEOUT_S)
            await self._runner.setup()
            await web.TCPSite(self._runner, host="0.0.0.0", port=self._settings.port).start()
            log.info("Slack HTTP mode listening on port %d (POST /slack/events)", self._settings.port)

    async def stop(self) -> None:
        """Stop taking events, give in-flight replies a bounded grace period, then disconnect. Idempotent."""
        socket, self._socket = self._socket, None
        runner, self._runner = self._runner, None
        if socket is not None:
            # Otherwise the client's connection check reopens the socket while replies finish below.
            socket.client.auto_reconnect_enabled = False
            await socket.disconnect_async()
        if runner is not None:
            # Stops listening at once; requests already being handled (they only log and hand off) finish.
            await runner.cleanup()
        try:
            await asyncio.wait_for(self._finish_in_flight(), timeout=STOP_GRACE_S)
        except TimeoutError:
            log.warning(
                "in-flight Slack replies did not finish within %.0fs; leaving them to be cancelled", STOP_GRACE_S
            )
        if socket is not None:
            await socket.close_async()

    async def is_connected(self) -> bool:
        """Socket Mode: the socket is up; HTTP mode: the server is listening (for /readyz)."""
        if self._socket is not None:
            return bool(await self._socket.client.is_connected())
        return self._runner is not None

    async def _finish_in_flight(self) -> None:
        while self._after_ack_tasks:
            await asyncio.gather(*self._after_ack_tasks, return_exceptions=True)
        await self._router.idle()

    def _after_ack(self, work: Coroutine[Any, Any, None], *, what: str) -> None:
        """Run ``work`` once the listener has returned (and bolt has acknowledged); errors are logged."""

        async def guarded() -> None:
            try:
                await work
            except Exception:
                log.exception("Slack: %s failed", what)

        task = asyncio.create_task(guarded())
        self._after_ack_tasks.add(task)
        task.add_done_callback(self._after_ack_tasks.discard)

    async def _verify_token(self) -> None:
        try:
            response = await self.client.auth_test()
        except SlackApiError as exc:
            error = slack_error(exc)
            if error == "missing_scope":
                needed = ", ".join(REQUIRED_SCOPES)
                if isinstance(exc.response.data, dict):
                    needed = str(exc.response.data.get("needed") or needed)
                raise ConfigError(
                    f"SLACK_BOT_TOKEN lacks the scope(s) {needed}. Add them under OAuth & Permissions (or install "
                    "the app from slack-manifest.yml) and reinstall the app."
                ) from None
            raise ConfigError(
                f"Slack rejected SLACK_BOT_TOKEN ({error}). Set it to the app's Bot User OAuth Token (xoxb-...) "
                "from OAuth & Permissions."
            ) from None
        self._own_user_id = response.get("user_id")
        log.info("Slack: signed in as %s in team %s", response.get("user"), response.get("team"))

    async def _http_event(self, request: web.Request) -> web.Response:
        """POST /slack/events: bolt verifies the signature and dispatches; a body that cannot parse is a 400."""
        try:
            bolt_request = await to_bolt_request(request)
        except ValueError as exc:  # includes JSONDecodeError and bad form encoding
            log.warning("refusing a malformed Slack request: %s", exc)
            return web.Response(status=400, text="malformed payload")
        with request_scope():  # the workspace a request acts for (OAuth mode) ends with it
            return await to_aiohttp_response(await self.app.async_dispatch(bolt_request))

    async def _http_oauth(self, request: web.Request) -> web.Response:
        """GET /slack/install ("Add to Slack") and /slack/oauth_redirect (Slack's answer): bolt's OAuth flow."""
        flow = self.app.oauth_flow
        assert flow is not None
        bolt_request = await to_bolt_request(request)
        if request.path == INSTALL_PATH:
            return await to_aiohttp_response(await flow.handle_installation(bolt_request))
        return await to_aiohttp_response(await flow.handle_callback(bolt_request))

    # -- listeners ------------------------------------------------------------------------------------------

    def _register(self) -> None:
        if self._distribution is not None:
            self.app.use(self._distribution.middleware)
        self.app.use(self._gate.middleware)
        listeners: dict[str, Callable[..., Awaitable[None]]] = {
            "agent_session_stopped": self.agent.on_session_stopped,
            "app_home_opened": self.agent.on_home_opened,
            "app_mention": self._on_mention,
            "assistant_thread_context_changed": self.agent.on_assistant_context_changed,
            "assistant_thread_started": self.agent.on_assistant_thread_started,
        }
        assert tuple(listeners) == LISTENED_EVENTS
        for event, listener in listeners.items():
            self.app.event(event)(listener)
        self.app.event("message")(self._on_message)
        self._buttons.register(self.app)
        self.app.action(FEEDBACK_ACTION)(self.agent.on_feedback)
        self._commands.register(self.app)
        self._buttons.register_fallback(self.app)
        self.app.error(self._on_error)

    def _is_users_message(self, event: Mapping[str, Any]) -> bool:
        return translate.is_users_message(event, bot_user_id=self.bot_user_id)

    async def _on_error(self, error: Exception, body: dict[str, Any]) -> None:
        log.error("Slack listener failed for %s: %s", body.get("type"), error, exc_info=error)

    async def _on_mention(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        if translate.is_from_a_bot(event, bot_user_id=self.bot_user_id) or self._commands.from_mention(body, event):
            return
        await self._deliver(body, event)

    async def _on_message(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        subtype = event.get("subtype")
        if subtype in ("message_changed", "message_deleted"):
            try:
                if subtype == "message_changed":
                    edit = translate.edit_from(body, event, bot_user_id=self.bot_user_id)
                    if edit is not None:
                        await self._router.handle_edit(edit)
                else:
                    await self._router.handle_deletion(translate.deletion_from(body, event))
            except translate.SlackPayloadError as exc:
                log.warning("ignoring a malformed Slack %s event: %s", subtype, exc)
            return
        if not self._is_users_message(event):
            return
        if event.get("channel_type") == "im":
            await self._deliver_dm(body, event)
            return
        thread_ts = event.get("thread_ts")
        if not isinstance(thread_ts, str):
            return  # top-level channel chatter; mentions arrive as app_mention
        if self.bot_user_id and f"<@{self.bot_user_id}>" in str(event.get("text") or ""):
            return  # the app_mention event for the same message does the work
        key = translate.thread_of(
            team=translate.team_of(body, event), channel=str(event.get("channel")), ts=thread_ts, thread_ts=thread_ts
        )
        if await self._router.is_tracked(key, mention_may_be_in_flight=True):
            await self._deliver(body, event)

    async def _deliver(self, body: Mapping[str, Any], event: Mapping[str, Any]) -> IncomingMessage | None:
        """Translate a user's message and hand it to the router, which logs it before this returns."""
        try:
            message = translate.message_from(
                body,
                event,
                bot_user_id=self.bot_user_id,
                display_name=await self.names.display_name(str(event.get("user"))),
                download_headers=await self._download_headers(),
            )
        except translate.SlackPayloadError as exc:
            log.warning("ignoring a malformed Slack message event: %s", exc)
            return None
        team = event.get("user_team") or event.get("team")  # the writer's own, in a Slack Connect channel
        self.outbox.remember_asker(message.thread, message.author.id, team=str(team) if team else None)
        await self._router.handle_message(message)
        return message

    async def _deliver_dm(self, body: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        """Every DM is the bot's: a top-level one starts its own thread, titled after its first message."""
        first = not isinstance(event.get("thread_ts"), str)
        if not first:
            key = translate.thread_of(
                team=translate.team_of(body, event),
                channel=str(event.get("channel")),
                ts=str(event.get("thread_ts")),
                thread_ts=str(event.get("thread_ts")),
            )
            first = not await self._router.is_tracked(key)  # the first message of an assistant panel thread
        message = await self._deliver(body, event)
        if message is not None and first:
            self._after_ack(self.agent.threads.set_title(message.thread, message.text), what="setting a thread title")

    async def _download_headers(self) -> dict[str, str]:
        return self._file_headers if self._distribution is None else await self._distribution.download_headers()


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")
