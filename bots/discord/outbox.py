"""How threadkeeper looks on Discord: typing, then one message edited as the reply streams, and the card.

Edits are throttled to about one a second per channel, the pace Discord tolerates without rate-limit
penalties. Replies over 2,000 characters continue in new messages, split on paragraph and line boundaries and
never inside a code block. The card is a message with two persistent buttons (``CardButton``), which any later
process can still answer because their custom ids carry the card; a tool-call approval is one too, with Allow
and Deny (``ApprovalButton``). While a tool runs, its status is an italic line at the end of the streaming
message, drawn by the same throttle as the text (``bots/streaming.py``) and gone from the final reply.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

import discord

from bots.discord.buttons import approval_view, card_view
from bots.messages import ThreadKey
from bots.ports import ApprovalCard, CatchUpCard
from bots.render import CARD_BODY, CARD_TITLE, approval_text, card_status_line, split_message
from bots.streaming import Snapshot, StreamingStatuses, throttled_snapshots

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
        self._statuses = StreamingStatuses()

    def _channel(self, thread: ThreadKey) -> discord.PartialMessageable:
        return self._client.get_partial_messageable(int(thread.thread))

    async def stream_reply(self, *, thread: ThreadKey, deltas: AsyncIterator[str]) -> list[str]:
        channel = self._channel(thread)
        received = ReceivedText(deltas)
        posted: list[discord.Message] = []
        shown: list[str] = []
        with self._statuses.streaming(thread) as status:
            snapshots = throttled_snapshots(received.deltas(), interval_s=self._edit_interval_s, status=status)
            async with aclosing(snapshots):
                # Ask the model first, then show typing while it thinks: the typing call never delays the request.
                first_text = asyncio.ensure_future(anext(snapshots, None))
                try:
                    async with typing_shown(channel):
                        first = await first_text
                    if first is None:
                        return []
                    await self._show(channel, first, posted, shown)
                    async for snapshot in snapshots:
                        await self._show(channel, snapshot, posted, shown)
                except BaseException:
                    first_text.cancel()
                    await asyncio.gather(first_text, return_exceptions=True)  # before aclosing closes the stream
                    if posted or received.text:
                        await self._show_interrupted(channel, received.text, posted, shown)
                    raise
        return [str(m.id) for m in posted]

    async def show_status(self, *, thread: ThreadKey, text: str | None) -> None:
        """A line at the end of the reply streaming in ``thread`` (the throttle shows it); else nothing."""
        try:
            self._statuses.show(thread, text)
        except Exception:
            log.exception("could not show a status in %s", thread)

    async def _show(
        self, channel: discord.PartialMessageable, snapshot: Snapshot, posted: list[discord.Message], shown: list[str]
    ) -> None:
        chunks = message_chunks(snapshot)
        for index, chunk in enumerate(chunks):
            if index < len(posted):
                if chunk != shown[index]:
                    posted[index] = await self._edit_or_repost(channel, posted[index], chunk)
                    shown[index] = chunk
            else:
                posted.append(await channel.send(chunk, allowed_mentions=NO_PINGS))
                shown.append(chunk)
        while len(posted) > len(chunks):  # a message that held only the status line
            shown.pop()
            await self._delete_quietly(posted.pop())

    async def _delete_quietly(self, message: discord.Message) -> None:
        try:
            await message.delete()
        except discord.HTTPException as exc:
            log.info("could not remove the status message %s: %s", message.id, exc)

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
            await self._show(channel, Snapshot(text.rstrip() + INTERRUPTED), posted, shown)
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

    async def post_approval(self, *, card: ApprovalCard) -> str:
        message = await self._channel(card.thread).send(
            approval_text(card), view=approval_view(card), allowed_mentions=NO_PINGS
        )
        return str(message.id)

    async def update_approval(self, *, card: ApprovalCard, message_id: str) -> None:
        partial = self._channel(card.thread).get_partial_message(int(message_id))
        view: Any = approval_view(card) if card.buttons_live else None
        await partial.edit(content=approval_text(card), view=view, allowed_mentions=NO_PINGS)


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


def message_chunks(snapshot: Snapshot) -> list[str]:
    """The messages a snapshot needs: the text split to Discord's limit, the status in italics at the end.

    The status goes only where it fits: it must never push text into a message of its own that would stay
    behind once the status is gone.
    """
    chunks = split_message(snapshot.text, limit=MESSAGE_LIMIT) if snapshot.text.strip() else []
    if snapshot.status:
        line = f"*{discord.utils.escape_markdown(snapshot.status)}*"
        if not chunks:
            chunks = [line]
        elif len(chunks[-1]) + 2 + len(line) <= MESSAGE_LIMIT:
            chunks[-1] = f"{chunks[-1].rstrip()}\n\n{line}"
    return chunks


def card_content(card: CatchUpCard) -> str:
    lines = [f"**{CARD_TITLE}**", CARD_BODY]
    if card.note:
        lines.append(f"*{card.note}*")
    status = card_status_line(card)
    if status:
        lines.append(f"> {status}")
    return "\n".join(lines)
