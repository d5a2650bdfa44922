"""How threadkeeper looks on Discord: typing, then one message edited as the reply streams, and the card.

Edits are throttled to about one a second per channel, the pace Discord tolerates without rate-limit
penalties. Replies over 2,000 characters continue in new messages, split on paragraph and line boundaries and
never inside a code block. The card is a message with two persistent buttons (``CardButton``), which any later
process can still answer because their custom ids carry the card; a tool-call approval is one too, with Allow
and Deny (``ApprovalButton``). While a tool runs, its status is an italic line at the end of the streaming
message, drawn by the same throttle as the text (``bots/replies/streaming.py``) and gone from the final reply.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import discord

from bots.discord.buttons import approval_view, card_view, stop_view
from bots.replies.render import CARD_BODY, CARD_TITLE, approval_message, card_status_line, split_message
from bots.replies.reply_stream import stream_as_messages
from bots.replies.streaming import Snapshot, StreamingStatuses
from bots.seam.messages import CardAction, ThreadKey
from bots.seam.ports import ApprovalCard, CatchUpCard, SessionStatus, card_button_id

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000
EDIT_INTERVAL_S = 1.0
FIND_CARD_LIMIT = 100  # the thread's latest messages searched for a card an earlier run posted
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
        with self._statuses.streaming(thread) as status:
            messages = DiscordMessages(self._channel(thread))
            try:
                return await stream_as_messages(messages, deltas, interval_s=self._edit_interval_s, status=status)
            finally:
                await messages.drop_stop()  # a last text that needed no edit, or an interrupted reply, keeps none

    async def show_status(self, *, thread: ThreadKey, text: str | None) -> None:
        """A line at the end of the reply streaming in ``thread`` (the throttle shows it); else nothing."""
        try:
            self._statuses.show(thread, text)
        except Exception:
            log.exception("could not show a status in %s", thread)

    async def set_session_status(self, *, thread: ThreadKey, status: SessionStatus, title: str | None = None) -> None:
        """Discord has no agent sessions: nothing to show."""

    async def rename_thread(self, *, thread: ThreadKey, title: str) -> None:
        """A server thread's name (the bot named it after the mention that started it); DMs have none."""
        try:
            channel = self._client.get_channel(int(thread.thread)) or await self._client.fetch_channel(
                int(thread.thread)
            )
            if isinstance(channel, discord.Thread):
                await channel.edit(name=title)
        except Exception:
            log.exception("could not rename %s", thread)

    async def post_notice(self, *, thread: ThreadKey, text: str) -> None:
        await self._channel(thread).send(text, allowed_mentions=NO_PINGS)

    async def post_card(self, *, card: CatchUpCard) -> str:
        message = await self._channel(card.thread).send(card_content(card), view=card_view(card))
        return str(message.id)

    async def update_card(self, *, card: CatchUpCard, message_id: str) -> None:
        partial = self._channel(card.thread).get_partial_message(int(message_id))
        view: Any = card_view(card) if card.buttons_live else None
        await partial.edit(content=card_content(card), view=view)

    async def find_card(self, *, card: CatchUpCard) -> str | None:
        """The id of the bot's own message among the thread's last ``FIND_CARD_LIMIT`` whose buttons are ``card``'s.

        Recovery only: an earlier run died between posting a card and storing its id (``bots/router/cards.py``).
        Replies never read the history (the "0 history reads" of docs/PERFORMANCE.md); this does, in that case alone.
        """
        me = self._client.user
        wanted = card_button_id(card.card_id, CardAction.CATCH_UP)
        async for message in self._channel(card.thread).history(limit=FIND_CARD_LIMIT):
            if me is not None and message.author.id == me.id and wanted in custom_ids(message):
                return str(message.id)
        return None

    async def post_approval(self, *, card: ApprovalCard) -> str:
        text, show_all = approval_message(card)
        view: Any = approval_view(card, show_all=show_all)
        message = await self._channel(card.thread).send(text, view=view, allowed_mentions=NO_PINGS)
        return str(message.id)

    async def update_approval(self, *, card: ApprovalCard, message_id: str) -> None:
        partial = self._channel(card.thread).get_partial_message(int(message_id))
        text, show_all = approval_message(card)
        await partial.edit(content=text, view=approval_view(card, show_all=show_all), allowed_mentions=NO_PINGS)


class DiscordMessages:
    """The platform calls the reply streamer (``bots/replies/reply_stream.py``) needs, in one Discord channel."""

    placeholder: str | None = None  # Discord shows typing instead

    def __init__(self, channel: discord.PartialMessageable) -> None:
        self._channel = channel
        self._messages: dict[str, discord.Message] = {}
        self._stoppable: str | None = None  # the message showing the Stop button while the answer is written

    def chunks(self, snapshot: Snapshot) -> list[str]:
        return message_chunks(snapshot)

    def waiting(self) -> AbstractAsyncContextManager[None]:
        return typing_shown(self._channel)

    async def post(self, text: str, *, complete: bool = False) -> str:
        """A new message of the reply; the Stop button moves to it while the answer is being written."""
        await self.drop_stop()
        if complete:
            return self._keep(await self._channel.send(text, allowed_mentions=NO_PINGS))
        message = await self._channel.send(text, view=stop_view(self._channel.id), allowed_mentions=NO_PINGS)
        self._stoppable = str(message.id)
        return self._keep(message)

    async def drop_stop(self) -> None:
        """The Stop button goes from the message that shows it (best effort: a click on a stale one is harmless)."""
        stoppable, self._stoppable = self._stoppable, None
        message = self._messages.get(stoppable) if stoppable is not None else None
        if message is None:
            return
        try:
            self._messages[str(message.id)] = await message.edit(view=None)
        except discord.HTTPException as exc:
            log.info("could not take the Stop button off message %s: %s", message.id, exc)

    async def edit(self, message_id: str, text: str, *, complete: bool = False) -> str:
        """Edit a reply in progress; if someone deleted it meanwhile, carry on in a new message."""
        message = self._messages.pop(message_id)
        extra: dict[str, Any] = {"view": None} if complete and message_id == self._stoppable else {}
        if extra:
            self._stoppable = None
        try:
            return self._keep(await message.edit(content=text, allowed_mentions=NO_PINGS, **extra))
        except discord.NotFound:
            log.info("reply message %s was deleted while streaming; posting the rest anew", message.id)
            return await self.post(text)

    async def delete(self, message_id: str) -> None:
        message = self._messages.pop(message_id)
        try:
            await message.delete()
        except discord.HTTPException as exc:
            log.info("could not remove the status message %s: %s", message.id, exc)

    def _keep(self, message: discord.Message) -> str:
        self._messages[str(message.id)] = message
        return str(message.id)


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


def custom_ids(message: discord.Message) -> set[str]:
    """The custom ids of every button (any component) on ``message``."""
    found: set[str] = set()
    for row in message.components:
        for item in getattr(row, "children", [row]):
            custom_id = getattr(item, "custom_id", None)
            if custom_id:
                found.add(str(custom_id))
    return found


def card_content(card: CatchUpCard) -> str:
    lines = [f"**{CARD_TITLE}**", CARD_BODY]
    if card.note:
        lines.append(f"*{card.note}*")
    status = card_status_line(card)
    if status:
        lines.append(f"> {status}")
    return "\n".join(lines)
