"""discord.py objects to threadkeeper events, and the thread keys both directions need.

A Discord thread's key is (guild, parent channel, thread channel); a DM channel is a thread of its own. Only
this module and the adapter know discord.py's types; the router sees ``bots.seam.messages`` values.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import discord

from bots.seam.messages import Attachment, Author, FileSource, IncomingMessage, ThreadKey

log = logging.getLogger(__name__)

PLATFORM = "discord"
THREAD_NAME_MAX = 100
ANSWERED_TYPES = (discord.MessageType.default, discord.MessageType.reply)  # people's messages, not system notices


def key_for(channel: discord.abc.Messageable | discord.abc.GuildChannel | discord.Thread) -> ThreadKey:
    if isinstance(channel, discord.Thread):
        return ThreadKey(PLATFORM, str(channel.guild.id), str(channel.parent_id), str(channel.id))
    channel_id = str(getattr(channel, "id", ""))
    guild = getattr(channel, "guild", None)
    return ThreadKey(PLATFORM, str(guild.id) if guild else "", channel_id, channel_id)


def key_of_click(interaction: discord.Interaction[Any]) -> ThreadKey | None:
    """Where a button was pressed; Discord sends the channel (a thread, with its parent) with every click."""
    channel = interaction.channel
    if isinstance(channel, discord.Thread | discord.DMChannel | discord.TextChannel):
        return key_for(channel)
    return None


def thread_name(text: str, *, author: str) -> str:
    """A thread title from the message: its first line, trimmed to Discord's 100 characters."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    name = first or f"Conversation with {author}"
    return name if len(name) <= THREAD_NAME_MAX else name[: THREAD_NAME_MAX - 1].rstrip() + "…"


def strip_mentions(text: str, mention_ids: tuple[int, ...]) -> str:
    """The text without mentions of the bot's user or its role (``<@id>``, ``<@!id>``, ``<@&id>``)."""
    for mention_id in mention_ids:
        text = re.sub(rf"<@[!&]?{mention_id}>", "", text)
    return text.strip()


def attachments_of(message: discord.Message) -> tuple[Attachment, ...]:
    """Every attachment as the CDN describes it; ``bots/files/attachments.py`` reads it at answer time, from where
    ``bots/files/downloads.py`` allows (Discord's CDN hosts). discord.py keeps the gateway's fields as they came, so
    an odd one (a size that is not a number) makes that file unreadable, never the message lost. A voice message
    (the message's IS_VOICE_MESSAGE flag, or an attachment with a duration and a waveform) says so, with its
    duration, for ``bots/files/voice.py``."""
    voice_message = bool(message.flags.voice)
    attachments = tuple(
        Attachment.described(
            name=a.filename,
            content_type=a.content_type,
            size=a.size,
            source=FileSource(url=a.url, platform=PLATFORM) if isinstance(a.url, str) and a.url else None,
            voice=voice_message or a.is_voice_message(),
            duration_s=a.duration,
        )
        for a in message.attachments
    )
    odd = sum(a.unreadable is not None for a in attachments)
    if odd:
        log.warning("Discord message %s carried %d malformed attachment description(s)", message.id, odd)
    return attachments


def replies_to(message: discord.Message, user_id: int) -> bool:
    """A reply to a message of ``user_id`` (Discord sends the message replied to along, when it still exists)."""
    reference = message.reference
    resolved = reference.resolved if reference is not None else None
    return isinstance(resolved, discord.Message) and resolved.author.id == user_id


def replied_to(message: discord.Message) -> int | None:
    """The id of the earlier message of the same channel ``message`` replies to; None for anything else (a forward,
    a reply across channels, a reference that points forward in time, which no reply does)."""
    reference = message.reference
    if message.type is not discord.MessageType.reply or reference is None or reference.message_id is None:
        return None
    if reference.channel_id != message.channel.id or reference.message_id >= message.id:
        return None
    return reference.message_id


async def incoming(
    message: discord.Message, *, key: ThreadKey, mention_ids: tuple[int, ...], title: str | None
) -> IncomingMessage:
    """The message as the router takes it; ``mention_ids`` are the bot's user id, then its role's id if it has one.

    Every message of a DM is addressed to the bot (``mentions_bot``), as is one naming its user or its role.
    """
    author = message.author
    named = {m.id for m in message.mentions} | {r.id for r in message.role_mentions}
    return IncomingMessage(
        thread=key,
        message_id=str(message.id),
        author=Author(id=str(author.id), display_name=author.display_name),
        text=strip_mentions(message.content, mention_ids),
        sent_utc=message.created_at,
        attachments=attachments_of(message),
        thread_title=title,
        raw=message,
        mentions_bot=message.guild is None or bool(named & set(mention_ids)),
        replies_to_bot=bool(mention_ids) and replies_to(message, mention_ids[0]),
        replies_to=None if (earlier := replied_to(message)) is None else str(earlier),
    )
