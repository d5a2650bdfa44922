"""A Discord thread's earlier messages, read when a mention brings the bot into it (``bots/router/joining.py``).

``GET /channels/{thread}/messages`` before the mention, newest first, up to the router's limit (discord.py pages
it by 100). A mention in a channel that replies to a message starts a thread of its own, and its history is the
reply chain it continues: the message it replies to, the one that one replies to, and so on, each read with
``GET /channels/{channel}/messages/{id}``. Discord sends the message a reply answers along with it, so a chain
costs about one call for every two messages. Either way each message is translated as a delivered one is
(``translate.incoming``); bots' messages, system notices and people the allowlists exclude are left out (a chain
goes on past them to what they replied to). Without Read Message History Discord answers 403: the router hears
:class:`~bots.seam.ports.HistoryRefused` and answers with what it has. A chain that reaches a deleted message
ends there, with what was read up to it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import discord

from bots.discord import translate
from bots.discord.access import Check, is_allowed, origin_of_message
from bots.seam.messages import IncomingMessage, ThreadKey
from bots.seam.ports import HistoryRefused

log = logging.getLogger(__name__)


class DiscordHistory:
    """``ThreadHistory`` and ``ReplyChainHistory`` for Discord threads (and DMs, which the router never joins)."""

    def __init__(
        self,
        client: discord.Client,
        *,
        checks: list[Check],
        mention_ids: Callable[[discord.Guild | None], tuple[int, ...]],
    ) -> None:
        self._client = client
        self._checks = checks
        self._mention_ids = mention_ids

    async def read_history(self, *, thread: ThreadKey, before: str, limit: int) -> list[IncomingMessage]:
        if not thread.thread.isdigit() or not before.isdigit():
            return []
        found: list[IncomingMessage] = []
        try:
            channel = await self._channel(int(thread.thread))
            if channel is None:
                return []
            async for old in channel.history(before=discord.Object(int(before)), limit=limit):
                if self._wanted(old):
                    found.append(await self._translated(old, thread))
        except discord.Forbidden as exc:
            raise _refused(exc) from None
        return list(reversed(found))

    async def read_reply_chain(self, *, thread: ThreadKey, replied_to: str, limit: int) -> list[IncomingMessage]:
        if not thread.channel.isdigit() or not replied_to.isdigit():
            return []
        found: list[IncomingMessage] = []
        next_id: int | None = int(replied_to)
        sent_along: discord.Message | None = None  # the message the last one read replies to, if Discord sent it
        gone: int | None = None
        try:
            channel = await self._channel(int(thread.channel))
            if channel is None:
                return []
            for _ in range(limit):
                if next_id is None:
                    break
                try:
                    old = sent_along or await channel.fetch_message(next_id)
                except discord.NotFound:
                    gone = next_id
                    break
                if self._wanted(old):
                    found.append(await self._translated(old, thread))
                next_id = translate.replied_to(old)
                resolved = old.reference.resolved if old.reference is not None else None
                if next_id is not None and isinstance(resolved, discord.DeletedReferencedMessage):
                    gone = next_id  # Discord sends a deleted one along as null
                    break
                sent_along = resolved if isinstance(resolved, discord.Message) and resolved.id == next_id else None
        except discord.Forbidden as exc:
            raise _refused(exc) from None
        if gone is not None:
            log.info("the reply chain of %s reaches deleted message %s: it is read up to there", thread, gone)
        return list(reversed(found))

    async def _channel(self, channel_id: int) -> discord.abc.Messageable | None:
        channel = self._client.get_channel(channel_id) or await self._client.fetch_channel(channel_id)
        return channel if isinstance(channel, discord.abc.Messageable) else None

    def _wanted(self, message: discord.Message) -> bool:
        """A person's message that the allowlists let in (what a delivered message must be to be logged)."""
        if message.author.bot or message.type not in translate.ANSWERED_TYPES:
            return False
        return is_allowed(origin_of_message(message), self._checks)

    async def _translated(self, message: discord.Message, thread: ThreadKey) -> IncomingMessage:
        mention_ids = self._mention_ids(message.guild)
        return await translate.incoming(message, key=thread, mention_ids=mention_ids, title=None)


def _refused(exc: discord.Forbidden) -> HistoryRefused:
    return HistoryRefused(f"403 {exc.text or 'Missing Access'}: the bot needs Read Message History")
