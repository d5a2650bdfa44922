"""DiscordAdapter: a discord.py client wired to the ThreadRouter.

A mention in a channel opens a thread on that message; a mention in someone else's thread adopts it; after
that every message in the thread is the conversation (the Message Content intent makes that possible). DMs are
a thread each. The adapter translates and filters; the router decides what happens.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
import yarl

from bots.config import ConfigError, Settings
from bots.discord import translate
from bots.discord.access import Origin, checks_from, is_allowed
from bots.discord.buttons import CardButton
from bots.discord.outbox import NO_PINGS, DiscordOutbox
from bots.messages import Author, CardAction, CardClick, MessageDeletion, MessageEdit, ThreadKey
from bots.threads import ThreadRouter

log = logging.getLogger(__name__)

DENIED_IN_DM = "Sorry, I'm not available to you here. Ask a server admin if you think that's wrong."
NEEDED_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    create_public_threads=True,
    send_messages_in_threads=True,
    read_message_history=True,
)
INTENT_MISSING = (
    "Discord refused the Message Content intent. Enable it in the Discord Developer Portal: your application > "
    "Bot > Privileged Gateway Intents > MESSAGE CONTENT INTENT, save, and start threadkeeper again."
)
READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 20.0
BACKFILL_LIMIT = 200
ANSWERED_TYPES = (discord.MessageType.default, discord.MessageType.reply)


class DiscordClient(discord.Client):
    """discord.py's client with our persistent buttons registered before the gateway connects."""

    def __init__(self, adapter: DiscordAdapter, *, guild_ready_timeout: float) -> None:
        intents = discord.Intents.none()
        intents.guilds = intents.guild_messages = intents.dm_messages = intents.message_content = True
        super().__init__(intents=intents, guild_ready_timeout=guild_ready_timeout, allowed_mentions=NO_PINGS)
        self.adapter = adapter
        self.card_click_handler = adapter.on_card_click

    async def setup_hook(self) -> None:
        self.add_dynamic_items(CardButton)

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter.on_message(message)

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        await self.adapter.on_raw_edit(payload)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        await self.adapter.on_raw_delete(payload)


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
        if settings.discord_api_base:
            discord.http.Route.BASE = settings.discord_api_base.rstrip("/")
        if settings.discord_gateway_url:
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)
        self.client = DiscordClient(self, guild_ready_timeout=guild_ready_timeout)
        self.outbox = DiscordOutbox(self.client)
        self._connection: asyncio.Task[None] | None = None
        self._backfilled: set[str] = set()

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        assert self._settings.discord_token is not None
        self._router.register_outbox(translate.PLATFORM, self.outbox)
        try:
            await self.client.login(self._settings.discord_token.get_secret_value())
        except discord.LoginFailure:
            await self.client.close()
            raise ConfigError(
                "Discord rejected DISCORD_TOKEN. Copy the token again from the Developer Portal (Bot > Reset Token)."
            ) from None
        self._connection = asyncio.create_task(self.client.connect(reconnect=True), name="discord-gateway")
        ready = asyncio.create_task(self.client.wait_until_ready())
        done, _ = await asyncio.wait(
            {self._connection, ready}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if self._connection in done:
            ready.cancel()
            await self.client.close()
            error = self._connection.exception()
            if isinstance(error, discord.PrivilegedIntentsRequired):
                raise ConfigError(INTENT_MISSING) from None
            raise ConfigError(f"Could not connect to the Discord gateway: {error}") from None
        if not done:
            ready.cancel()
            raise ConfigError("The Discord gateway did not become ready within a minute; check DISCORD_GATEWAY_URL.")
        assert self.client.user is not None
        invite = discord.utils.oauth_url(self.client.user.id, permissions=NEEDED_PERMISSIONS, scopes=("bot",))
        log.info("Discord: connected as %s; invite URL: %s", self.client.user, invite)

    async def stop(self) -> None:
        """Stop taking messages, let in-flight replies finish (bounded), close the gateway."""
        self._accepting = False
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

    def _origin(self, message: discord.Message) -> Origin:
        roles = frozenset(str(r.id) for r in getattr(message.author, "roles", []))
        guild = str(message.guild.id) if message.guild else None
        channel = message.channel
        parent = getattr(channel, "parent_id", None) or getattr(channel, "id", "")
        return Origin(guild=guild, channel=str(parent), user=str(message.author.id), roles=roles)

    async def on_message(self, message: discord.Message) -> None:
        if not self._accepting or message.author.bot or message.type not in ANSWERED_TYPES:
            return
        me = self._me
        try:
            if not is_allowed(self._origin(message), self._checks):
                log.info("ignoring a message from %s in %s (allowlist)", message.author.id, message.channel.id)
                if message.guild is None:
                    await message.channel.send(DENIED_IN_DM)
                return
            target = await self._thread_for(message, mentioned=me in message.mentions)
            if target is None:
                return
            key, title = target
            await self._backfill(message, key=key, title=title)
            await self._router.handle_message(await translate.incoming(message, key=key, bot_id=me.id, title=title))
        except discord.HTTPException as exc:
            log.error("Discord refused a call while handling message %s: %s", message.id, exc)

    async def _backfill(self, message: discord.Message, *, key: ThreadKey, title: str | None) -> None:
        """Once per thread per process: log what people wrote while the bot was down, oldest first.

        Discord does not replay messages a stopped bot missed; the channel's history after the last logged
        message does. They are logged (and later answered) before the message that woke the thread up.
        """
        if str(key) in self._backfilled:
            return
        self._backfilled.add(str(key))
        last = await self._router.latest_logged_id(key)
        if last is None or not last.isdigit():
            return
        me = self._me
        missed = 0
        history = message.channel.history(after=discord.Object(int(last)), limit=BACKFILL_LIMIT, oldest_first=True)
        async for old in history:
            if old.id >= message.id:
                break
            if old.author.bot or old.type not in ANSWERED_TYPES:
                continue
            await self._router.handle_message(await translate.incoming(old, key=key, bot_id=me.id, title=title))
            missed += 1
        if missed:
            log.info("logged %d message(s) sent in %s while the bot was away", missed, key)

    async def _thread_for(self, message: discord.Message, *, mentioned: bool) -> tuple[ThreadKey, str | None] | None:
        """The thread a message belongs to, creating one for a mention in a channel; None to ignore it."""
        channel = message.channel
        if message.guild is None:
            return translate.key_for(channel), None
        if isinstance(channel, discord.Thread):
            key = translate.key_for(channel)
            if mentioned or await self._router.is_tracked(key):
                return key, channel.name
            return None
        if mentioned and isinstance(channel, discord.TextChannel):
            name = translate.thread_name(
                translate.strip_mention(message.content, bot_id=self._me.id),
                author=message.author.display_name,
            )
            thread = await message.create_thread(name=name, auto_archive_duration=1440)
            return translate.key_for(thread), thread.name
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
        author = payload.data.get("author") or {}
        content = payload.data.get("content")
        if author.get("bot") or content is None:
            return
        key = await self._key_for_channel_id(payload.channel_id, payload.guild_id)
        if key is not None:
            text = translate.strip_mention(str(content), bot_id=self._me.id)
            await self._router.handle_edit(MessageEdit(thread=key, message_id=str(payload.message_id), text=text))

    async def on_raw_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        key = await self._key_for_channel_id(payload.channel_id, payload.guild_id)
        if key is not None:
            await self._router.handle_deletion(MessageDeletion(thread=key, message_id=str(payload.message_id)))

    async def on_card_click(self, interaction: discord.Interaction[Any], card_id: int, action: CardAction) -> None:
        """Acknowledge within Discord's 3 seconds, then let the router resolve the card."""
        await interaction.response.defer()
        user = interaction.user
        click = CardClick(card_id=card_id, action=action, user=Author(str(user.id), user.display_name), raw=interaction)
        result = await self._router.handle_click(click)
        if result.private_note:
            await interaction.followup.send(result.private_note, ephemeral=True)
