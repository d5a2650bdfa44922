"""DiscordAdapter: a discord.py client wired to the ThreadRouter.

A mention in a channel opens a thread on that message (one that replies to a message brings the reply chain along
as the thread's history: ``bots/discord/history.py``); a mention in someone else's thread adopts it; after that
every message in the thread is the conversation (the Message Content intent makes that possible). DMs are a
thread each. The adapter translates and filters; the router decides what happens.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import discord
import yarl

from bots.config import ConfigError, Settings
from bots.discord import translate
from bots.discord.access import NOT_AVAILABLE, checks_from, is_allowed, origin_of_message
from bots.discord.buttons import ApprovalButton, CardButton, ShowArgumentsButton, StopButton
from bots.discord.clicks import DiscordClicks
from bots.discord.commands import ForgetButton, SlashCommands
from bots.discord.history import DiscordHistory
from bots.discord.message_files import DiscordMessageFiles
from bots.discord.outbox import NO_PINGS, DiscordOutbox
from bots.discord.shards import ShardKeeper
from bots.router.bounded import BoundedCache
from bots.router.threads import ThreadRouter
from bots.seam.messages import (
    IncomingMessage,
    MessageDeletion,
    MessageEdit,
    ThreadKey,
)

log = logging.getLogger(__name__)

NEEDED_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    create_public_threads=True,
    send_messages_in_threads=True,
    read_message_history=True,
)
# "applications.commands" lets a server admin see and permit the slash commands (bots/discord/commands.py).
INVITE_SCOPES = ("bot", "applications.commands")
INTENT_MISSING = (
    "Discord refused the Message Content intent. Enable it in the Discord Developer Portal: your application > "
    "Bot > Privileged Gateway Intents > MESSAGE CONTENT INTENT, save, and start threadkeeper again."
)
READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 20.0
BACKFILL_LIMIT = 200
BACKFILLED_THREADS_MAX = 10_000  # remembered per process; a forgotten one is only backfilled again (idempotent)
ANSWERED_TYPES = translate.ANSWERED_TYPES


def invite_url(application_id: int) -> str:
    """The URL that adds the bot to a server with what it needs: its permissions and the slash commands."""
    return discord.utils.oauth_url(application_id, permissions=NEEDED_PERMISSIONS, scopes=INVITE_SCOPES)


class DiscordClient(discord.Client):
    """discord.py's client with our persistent buttons registered before the gateway connects."""

    def __init__(
        self, adapter: DiscordAdapter, *, guild_ready_timeout: float, commands: SlashCommands, shard_count: int | None
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = intents.guild_messages = intents.dm_messages = intents.message_content = True
        super().__init__(
            intents=intents, guild_ready_timeout=guild_ready_timeout, allowed_mentions=NO_PINGS, shard_count=shard_count
        )
        self.adapter = adapter
        self.card_click_handler = adapter.clicks.on_card_click
        self.approval_click_handler = adapter.clicks.on_approval_click
        self.arguments_click_handler = adapter.clicks.on_arguments_click
        self.stop_click_handler = commands.on_stop
        self.commands = commands
        self.tree = commands.tree_for(self)

    async def setup_hook(self) -> None:
        self.add_dynamic_items(CardButton, ApprovalButton, ShowArgumentsButton, ForgetButton, StopButton)
        await self.commands.sync(self.tree)

    async def on_ready(self) -> None:
        self.adapter.on_new_gateway_session()

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter.on_message(message)

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        await self.adapter.on_raw_edit(payload)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        await self.adapter.on_raw_delete(payload)

    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        await self.adapter.on_raw_bulk_delete(payload)


class DiscordAdapter:
    """PlatformAdapter for Discord."""

    name = "discord"

    def __init__(self, *, settings: Settings, router: ThreadRouter, guild_ready_timeout: float = 2.0) -> None:
        if settings.discord_token is None:
            raise ConfigError("DISCORD_TOKEN is not set. Set it to your bot's token from the Developer Portal.")
        self._settings = settings
        self._router = router
        self._checks = checks_from(settings)
        self._accepting = True
        self.clicks = DiscordClicks(router=router, checks=self._checks)
        commands = SlashCommands(router=router, checks=self._checks, models=settings.models)
        # One worker with one shard identifies as ever; several workers name their shard (bots/discord/shards.py).
        sharded = router.ownership.shared or settings.discord_shards > 1
        self.client = DiscordClient(
            self,
            guild_ready_timeout=guild_ready_timeout,
            commands=commands,
            shard_count=settings.discord_shards if sharded else None,
        )
        self._sharded = sharded
        self.shards = ShardKeeper(
            ownership=router.ownership,
            shard_count=settings.discord_shards,
            connect=self._connect_gateway,
            disconnect=self._drop_gateway,
            try_every_s=settings.worker_poll_s,
        )
        self.outbox = DiscordOutbox(self.client)
        self._connection: asyncio.Task[None] | None = None
        self._backfilled: BoundedCache[ThreadKey, None] = BoundedCache(max_entries=BACKFILLED_THREADS_MAX)
        # Threads whose history could not be read: the id to read after next time (later messages get logged
        # meanwhile, so the log's latest id would skip what was missed).
        self._backfill_after: BoundedCache[ThreadKey, str] = BoundedCache(max_entries=BACKFILLED_THREADS_MAX)

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Log in, connect the gateway of a free shard, and return once READY (or logged in to the REST API only,
        when other workers hold every shard); a clear ConfigError for what a person must fix."""
        self._point_at_configured_servers()
        self._router.register_outbox(translate.PLATFORM, self.outbox)
        self._router.register_history(
            translate.PLATFORM, DiscordHistory(self.client, checks=self._checks, mention_ids=self._mention_ids)
        )
        self._router.register_files(translate.PLATFORM, DiscordMessageFiles(self.client))
        try:
            await self._login()
            shard = await self.shards.take_free_shard()
        except BaseException:
            await self.client.close()
            raise
        self.shards.start()
        me = self._me
        if shard is None:
            log.info("Discord: logged in as %s, REST only (other workers hold every shard)", me)
        log.info("Discord: connected as %s; invite URL: %s", me, invite_url(me.id))

    async def is_connected(self) -> bool:
        """READY, not closing, and the gateway socket open (for /readyz); logged in, for a worker without a shard."""
        if self.shards.shard is None:
            return self.client.user is not None and not self.client.is_closed()
        ws = self.client.ws
        return self.client.is_ready() and not self.client.is_closed() and ws is not None and bool(ws.open)

    def _point_at_configured_servers(self) -> None:
        """DISCORD_API_BASE / DISCORD_GATEWAY_URL: discord.py reads these two process-wide class attributes."""
        if self._settings.discord_api_base:
            discord.http.Route.BASE = self._settings.discord_api_base.rstrip("/")
        if self._settings.discord_gateway_url:
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self._settings.discord_gateway_url)

    async def _login(self) -> None:
        assert self._settings.discord_token is not None
        try:
            await self.client.login(self._settings.discord_token.get_secret_value())
        except discord.LoginFailure:
            raise ConfigError(
                "Discord rejected DISCORD_TOKEN. Copy the token again from the Developer Portal (Bot > Reset Token)."
            ) from None

    async def _drop_gateway(self) -> None:
        """Close this worker's gateway connection (its shard's lease is gone); REST stays logged in."""
        connection, self._connection = self._connection, None
        ws = self.client.ws
        if connection is not None:
            connection.cancel()
            await asyncio.gather(connection, return_exceptions=True)
        if ws is not None:
            await ws.close(code=1000)

    async def _connect_gateway(self, shard: int) -> None:
        if self._sharded:
            self.client.shard_id = shard
        self._connection = asyncio.create_task(self.client.connect(reconnect=True), name="discord-gateway")
        ready = asyncio.create_task(self.client.wait_until_ready())
        done, _ = await asyncio.wait(
            {self._connection, ready}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if ready in done:
            return
        ready.cancel()
        if self._connection in done:
            error = self._connection.exception()
            if isinstance(error, discord.PrivilegedIntentsRequired):
                raise ConfigError(INTENT_MISSING) from None
            raise ConfigError(f"Could not connect to the Discord gateway: {error}") from None
        raise ConfigError("The Discord gateway did not become ready within a minute; check DISCORD_GATEWAY_URL.")

    async def stop(self) -> None:
        """Stop taking messages, let in-flight replies finish (bounded), close the gateway."""
        self._accepting = False
        await self.shards.stop()
        try:
            await asyncio.wait_for(self._router.idle(), timeout=STOP_GRACE_S)
        except TimeoutError:
            log.warning("in-flight Discord replies did not finish within %.0fs; cancelling", STOP_GRACE_S)
        await self.client.close()
        if self._connection is not None:
            await asyncio.gather(self._connection, return_exceptions=True)

    @property
    def _me(self) -> discord.ClientUser:
        """The bot's own user; events only flow after READY, when discord.py has set it."""
        me = self.client.user
        if me is None:
            raise RuntimeError("Discord event before READY")
        return me

    # -- events ---------------------------------------------------------------------------------------------

    def on_new_gateway_session(self) -> None:
        """After a fresh IDENTIFY (not a RESUME) Discord replays nothing: each thread looks at its history again."""
        self._backfilled.clear()

    async def on_message(self, message: discord.Message) -> None:
        if not self._accepting or message.author.bot or message.type not in ANSWERED_TYPES:
            return
        try:
            if not is_allowed(origin_of_message(message), self._checks):
                log.info("ignoring a message from %s in %s (allowlist)", message.author.id, message.channel.id)
                if message.guild is None:
                    await message.channel.send(NOT_AVAILABLE)
                return
            target = await self._thread_for(message, mentioned=self._mentions_me(message))
            if target is None:
                return
            key, title, named_after_it = target
            await self._backfill(message, key=key, title=title)
            incoming = await self._incoming(message, key=key, title=title)
            await self._router.handle_message(replace(incoming, title_from_text=named_after_it))
        except discord.HTTPException as exc:
            log.error("Discord refused a call while handling message %s: %s", message.id, exc)

    def _mentions_me(self, message: discord.Message) -> bool:
        """A mention of the bot's user, or of the role Discord made for it (the client offers both)."""
        own_role = message.guild.self_role if message.guild else None
        return self._me in message.mentions or (own_role is not None and own_role in message.role_mentions)

    def _mention_ids(self, guild: discord.Guild | None) -> tuple[int, ...]:
        own_role = guild.self_role if guild else None
        return (self._me.id,) if own_role is None else (self._me.id, own_role.id)

    async def _incoming(self, message: discord.Message, *, key: ThreadKey, title: str | None) -> IncomingMessage:
        return await translate.incoming(message, key=key, mention_ids=self._mention_ids(message.guild), title=title)

    async def _backfill(self, message: discord.Message, *, key: ThreadKey, title: str | None) -> None:
        """Once per thread per process: log what people wrote while the bot was down, oldest first.

        Discord does not replay messages a stopped bot missed; the channel's history after the last logged
        message does. They are logged (and later answered) before the message that woke the thread up. The
        thread counts as done only once the history was read: a refused fetch is tried again with the next
        message, and never costs the message that woke the thread up.
        """
        if key in self._backfilled:
            return
        last = self._backfill_after.get(key) or await self._router.latest_logged_id(key)
        try:
            missed = 0 if last is None else await self._log_missed(message, key=key, title=title, after=last)
        except discord.HTTPException as exc:
            log.warning("could not read the history of %s (%s); trying again with the next message", key, exc)
            if last is not None:
                self._backfill_after.put(key, last)
            return
        self._backfill_after.discard(key)
        self._backfilled.put(key, None)
        if missed:
            log.info("logged %d message(s) sent in %s while the bot was away", missed, key)

    async def _log_missed(self, message: discord.Message, *, key: ThreadKey, title: str | None, after: str) -> int:
        """Log the thread's messages after ``after`` and before ``message``; return how many there were."""
        if not after.isdigit():
            return 0
        missed = 0
        history = message.channel.history(after=discord.Object(int(after)), limit=BACKFILL_LIMIT, oldest_first=True)
        async for old in history:
            if old.id >= message.id:
                break
            if old.author.bot or old.type not in ANSWERED_TYPES:
                continue
            await self._router.handle_message(await self._incoming(old, key=key, title=title))
            missed += 1
        return missed

    async def _thread_for(
        self, message: discord.Message, *, mentioned: bool
    ) -> tuple[ThreadKey, str | None, bool] | None:
        """The thread a message belongs to (creating one for a mention in a channel; None to ignore it), its name,
        and whether the name was made from this message (a thread the bot creates, named after the mention)."""
        channel = message.channel
        if message.guild is None:
            return translate.key_for(channel), None, False
        if isinstance(channel, discord.Thread):
            key = translate.key_for(channel)
            if mentioned or await self._router.is_tracked(key):
                return key, channel.name, False
            return None
        if mentioned and isinstance(channel, discord.TextChannel):
            name = translate.thread_name(
                translate.strip_mentions(message.content, self._mention_ids(message.guild)),
                author=message.author.display_name,
            )
            thread = await message.create_thread(name=name, auto_archive_duration=1440)
            return translate.key_for(thread), thread.name, True
        return None

    async def _key_for_channel_id(self, channel_id: int, guild_id: int | None) -> ThreadKey | None:
        channel = self.client.get_channel(channel_id)
        if channel is None and guild_id is not None:
            try:
                channel = await self.client.fetch_channel(channel_id)
            except discord.HTTPException:
                return None
        if channel is None:  # a DM: its channel is its own thread
            return ThreadKey(translate.PLATFORM, "", str(channel_id), str(channel_id))
        return translate.key_for(channel)  # type: ignore[arg-type]

    async def on_raw_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        """A changed text is an edit; an update without ``edited_timestamp`` (a link preview, say) is not."""
        message = payload.message
        if message.author.bot or message.edited_at is None:
            return
        text = translate.strip_mentions(message.content, self._mention_ids(message.guild))
        if (key := await self._key_for_channel_id(payload.channel_id, payload.guild_id)) is not None:
            await self._router.handle_edit(MessageEdit(thread=key, message_id=str(payload.message_id), text=text))

    async def on_raw_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        """The router forgets the message in every thread of its channel that logged it: a thread it started, the
        threads of replies whose chain it is part of (``bots/router/forgetting.py``), its own thread's."""
        if (key := await self._key_for_channel_id(payload.channel_id, payload.guild_id)) is not None:
            await self._router.handle_deletion(MessageDeletion(thread=key, message_id=str(payload.message_id)))

    async def on_raw_bulk_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        """A moderator's purge: each message is forgotten as if deleted one by one."""
        if (key := await self._key_for_channel_id(payload.channel_id, payload.guild_id)) is None:
            return
        for message_id in sorted(payload.message_ids):
            await self._router.handle_deletion(MessageDeletion(thread=key, message_id=str(message_id)))
