"""Card and approval buttons on Discord: each click acknowledged within Discord's 3 seconds, then decided by the router.

A click is an interaction that Discord expires after 3 seconds unless it is acknowledged, while the router's
decision (a catch-up summary, an approval that resumes a turn) can take longer. So the click is deferred at once,
handed to the router with who clicked and in which thread (the router refuses a button pressed anywhere but its
card's own thread), and whatever the clicker alone should know (a refusal, an approval already decided, the full
arguments) follows as an ephemeral message. People the allowlists exclude are told the bot is not available to
them, and nothing reaches the router.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bots.discord import translate
from bots.discord.access import NOT_AVAILABLE, Check, is_allowed, origin_of_click
from bots.discord.arguments import full_arguments_reply
from bots.router.threads import ThreadRouter
from bots.seam.messages import ApprovalAction, ApprovalClick, ArgumentsClick, Author, CardAction, CardClick, ThreadKey
from bots.seam.ports import ClickResult

log = logging.getLogger(__name__)


class DiscordClicks:
    """The handlers the persistent buttons call (``bots/discord/buttons.py``)."""

    def __init__(self, *, router: ThreadRouter, checks: list[Check]) -> None:
        self._router = router
        self._checks = checks

    async def on_card_click(self, interaction: discord.Interaction[Any], card_id: int, action: CardAction) -> None:
        """A "Where were we?" button: the router resolves the card."""

        async def resolve(author: Author, thread: ThreadKey | None) -> ClickResult:
            return await self._router.handle_click(CardClick(card_id, action, author, raw=interaction, thread=thread))

        await self._on_click(interaction, resolve, what=f"card {card_id}")

    async def on_approval_click(
        self, interaction: discord.Interaction[Any], approval_id: int, action: ApprovalAction
    ) -> None:
        """Allow or Deny on a tool-call approval: the router decides whether the click counts."""

        async def resolve(author: Author, thread: ThreadKey | None) -> ClickResult:
            card = None if interaction.message is None else str(interaction.message.id)
            click = ApprovalClick(approval_id, action, author, thread=thread, raw=interaction, card_message_id=card)
            return await self._router.handle_approval_click(click)

        await self._on_click(interaction, resolve, what=f"approval {approval_id}")

    async def on_arguments_click(self, interaction: discord.Interaction[Any], approval_id: int) -> None:
        """Show all on an approval card: the full arguments, for the clicker alone."""

        async def resolve(author: Author, thread: ThreadKey | None) -> ClickResult:
            click = ArgumentsClick(approval_id, author, thread=thread, raw=interaction)
            return await self._router.handle_arguments_click(click)

        await self._on_click(interaction, resolve, what=f"the arguments of approval {approval_id}")

    async def _on_click(
        self,
        interaction: discord.Interaction[Any],
        resolve: Callable[[Author, ThreadKey | None], Awaitable[ClickResult]],
        *,
        what: str,
    ) -> None:
        """Acknowledge within Discord's 3 seconds, hand the click on, and tell the clicker alone what to know."""
        try:
            if not is_allowed(origin_of_click(interaction), self._checks):
                await interaction.response.send_message(NOT_AVAILABLE, ephemeral=True)
                return
            await self._defer(interaction)
            user = interaction.user
            result = await resolve(Author(str(user.id), user.display_name), translate.key_of_click(interaction))
            if result.private_note:
                await interaction.followup.send(result.private_note, ephemeral=True)
            if result.arguments is not None:
                await interaction.followup.send(ephemeral=True, **full_arguments_reply(result.arguments))
        except discord.HTTPException as exc:
            log.error("Discord refused a call while handling a click on %s: %s", what, exc)

    async def _defer(self, interaction: discord.Interaction[Any]) -> None:
        """Acknowledge the click; if Discord has already expired it, the choice still counts."""
        try:
            await interaction.response.defer()
        except discord.NotFound:
            log.warning("a card click's interaction expired before it was acknowledged; handling it anyway")
