"""How threadkeeper looks on Discord: typing, then one message edited as the reply streams, and the card.

Edits are throttled to about one a second per channel, the pace Discord tolerates without rate-limit
penalties. Replies over 2,000 characters continue in new messages, split on paragraph and line boundaries and
never inside a code block. The card is a message with two persistent buttons (``CardButton``), which any later
process can still answer because their custom ids carry the card.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import discord

from bots.discord.buttons import card_view
from bots.messages import ThreadKey
from bots.ports import CatchUpCard
from bots.render import CARD_BODY, CARD_TITLE, card_status_line, split_message, throttled_text

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000
EDIT_INTERVAL_S = 1.0
INTERRUPTED = "\n\n*(reply interrupted)*"
NO_PINGS = discord.AllowedMentions.none()


class DiscordOutbox:
    """ThreadOutbox for Discord, on a connected client."""

    def __init__(self, client: discord.Client, *, edit_interval_s: float = EDIT_INTERVAL_S) -> None:
        self._client = client
        self._edit_interval_s = edit_interval_s

    def _channel(self, thread: ThreadKey) -> discord.PartialMessageable:
        return self._client.get_partial_messageable(int(thread.thread))

    async def stream_reply(self, *, thread: ThreadKey, deltas: AsyncIterator[str]) -> list[str]:
        channel = self._channel(thread)
        received = ReceivedText(deltas)
        snapshots = throttled_text(received.deltas(), interval_s=self._edit_interval_s)
        posted: list[discord.Message] = []
        shown: list[str] = []
        # Ask the model first, then show typing while it thinks: the typing call never delays the request.
        first_text = asyncio.ensure_future(anext(snapshots, None))
        try:
            async with typing_shown(channel):
                first = await first_text
            if first is None:
                return []
            await self._show(channel, first, posted, shown)
            async for text in snapshots:
                await self._show(channel, text, posted, shown)
        except BaseException:
            first_text.cancel()
            if posted or received.text:
                await self._show_interrupted(channel, received.text, posted, shown)
            raise
        return [str(m.id) for m in posted]

    async def _show(
        self, channel: discord.PartialMessageable, text: str, posted: list[discord.Message], shown: list[str]
    ) -> None:
        for index, chunk in enumerate(split_message(text, limit=MESSAGE_LIMIT)):
            if index < len(posted):
                if chunk != shown[index]:
                    posted[index] = await self._edit_or_repost(channel, posted[index], chunk)
                    shown[index] = chunk
            else:
                posted.append(await channel.send(chunk, allowed_mentions=NO_PINGS))
                shown.append(chunk)

    async def _edit_or_repost(
        self, channel: discord.PartialMessageable, message: discord.Message, text: str
    ) -> discord.Message:
        """Edit a reply in progress; if someone deleted it meanwhile, carry on in a new message."""
        try:
            return await message.edit(content=text, allowed_mentions=NO_PINGS)
        except discord.NotFound:
            log.info("reply message %s was deleted while streaming; posting the rest anew", message.id)
            return await channel.send(text, allowed_mentions=NO_PINGS)

    async def _show_interrupted(
        self, channel: discord.PartialMessageable, text: str, posted: list[discord.Message], shown: list[str]
    ) -> None:
        """Show everything the model sent before it failed, marked as cut short (the router adds a note)."""
        try:
            await self._show(channel, text.rstrip() + INTERRUPTED, posted, shown)
        except discord.HTTPException as exc:
            log.warning("could not mark an interrupted reply: %s", exc)

    async def post_notice(self, *, thread: ThreadKey, text: str) -> None:
        await self._channel(thread).send(text, allowed_mentions=NO_PINGS)

    async def post_card(self, *, card: CatchUpCard) -> str:
        message = await self._channel(card.thread).send(card_content(card), view=card_view(card))
        return str(message.id)

    async def update_card(self, *, card: CatchUpCard, message_id: str) -> None:
        partial = self._channel(card.thread).get_partial_message(int(message_id))
        view: Any = card_view(card) if card.buttons_live else None
        await partial.edit(content=card_content(card), view=view)


class ReceivedText:
    """Passes the model's deltas through and keeps their sum: what to show if the stream fails."""

    def __init__(self, deltas: AsyncIterator[str]) -> None:
        self._source = deltas
        self._parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self._parts)

    async def deltas(self) -> AsyncIterator[str]:
        async for delta in self._source:
            self._parts.append(delta)
            yield delta


@asynccontextmanager
async def typing_shown(channel: discord.PartialMessageable) -> AsyncIterator[None]:
    """Show "threadkeeper is typing..." while the block runs; a refused typing call never costs the reply."""
    typing = channel.typing()
    try:
        await typing.__aenter__()
    except discord.HTTPException as exc:
        log.warning("Discord refused the typing indicator in %s: %s", channel.id, exc)
        yield
        return
    try:
        yield
    finally:
        await typing.__aexit__(None, None, None)


def card_content(card: CatchUpCard) -> str:
    lines = [f"**{CARD_TITLE}**", CARD_BODY]
    if card.note:
        lines.append(f"*{card.note}*")
    status = card_status_line(card)
    if status:
        lines.append(f"> {status}")
    return "\n".join(lines)
