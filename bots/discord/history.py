"""A Discord thread's earlier messages, read when a mention brings the bot into it (``bots/router/joining.py``).

``GET /channels/{thread}/messages`` before the mention, newest first, up to the router's limit (discord.py pages
it by 100). Each message is translated as a delivered one is (``translate.incoming``); bots' messages, system
notices and people the allowlists exclude are left out. Without Read Message History Discord answers 403: the
router hears :class:`~bots.seam.ports.HistoryRefused` and answers with what it has.
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
    """``ThreadHistory`` for Discord threads (and DMs, which the router never joins)."""

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
            channel = self._client.get_channel(int(thread.thread)) or await self._client.fetch_channel(
                int(thread.thread)
            )
            if not isinstance(channel, discord.abc.Messageable):
                return []
            async for old in channel.history(before=discord.Object(int(before)), limit=limit):
                if old.author.bot or old.type not in translate.ANSWERED_TYPES:
                    continue
                if not is_allowed(origin_of_message(old), self._checks):
                    continue
                mention_ids = self._mention_ids(old.guild)
                found.append(await translate.incoming(old, key=thread, mention_ids=mention_ids, title=None))
        except discord.Forbidden as exc:
            raise HistoryRefused(f"403 {exc.text or 'Missing Access'}: the bot needs Read Message History") from None
        return list(reversed(found))
