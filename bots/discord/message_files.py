"""A waiting Discord message's files described again, with fresh CDN URLs, after a restart lost their first ones.

Discord's attachment URLs are signed and expire, and the router keeps them in memory only; a message still waiting
when the bot restarted is fetched again (``GET /channels/{thread}/messages/{id}``, one call) and its attachments
translated as a delivered message's are (``translate.attachments_of``). ``bots/files/refetching.py`` decides when,
and ``bots/files/downloads.py`` where a URL may be fetched from. A message Discord no longer has (404: deleted) is
None; a refusal (403 without Read Message History, any other error) is :class:`~bots.seam.ports.FilesRefused`.
"""

from __future__ import annotations

import discord

from bots.discord import translate
from bots.seam.messages import Attachment, ThreadKey
from bots.seam.ports import FilesRefused


class DiscordMessageFiles:
    """``MessageFiles`` for Discord threads and DMs (the thread's id is the channel the message was sent in)."""

    def __init__(self, client: discord.Client) -> None:
        self._client = client

    async def message_files(self, *, thread: ThreadKey, message_id: str) -> tuple[Attachment, ...] | None:
        if not thread.thread.isdigit() or not message_id.isdigit():
            return None
        channel = self._client.get_partial_messageable(int(thread.thread))
        try:
            message = await channel.fetch_message(int(message_id))
        except discord.NotFound:
            return None
        except discord.Forbidden as exc:
            raise FilesRefused(f"403 {exc.text or 'Missing Access'}: the bot needs Read Message History") from None
        except discord.HTTPException as exc:
            raise FilesRefused(f"Discord answered {exc.status} {exc.text or ''}".strip()) from None
        return translate.attachments_of(message)
