"""The cards' buttons as discord.py ``DynamicItem``s: they survive any number of restarts.

discord.py routes a click on any message (one this process never sent, too) to the item whose template
matches the custom id: ``tk-card:<card id>:<action>`` for the "Where were we?" card, ``tk-approval:<approval
id>:<allow|deny>`` for a tool-call approval, ``tk-args:<approval id>:show_all`` for its full arguments. The id
leads the router to the thread through SQLite; nothing about a card lives in memory. ``tk-stop:<thread id>`` is
the Stop button on an answer being written; the thread it stops is the one it is clicked in.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bots.replies.render import ALLOW_LABEL, CATCH_UP_LABEL, DENY_LABEL, FRESH_LABEL, SHOW_ALL_LABEL, STOP_LABEL
from bots.seam.messages import ApprovalAction, CardAction
from bots.seam.ports import (
    APPROVAL_BUTTON_PREFIX,
    ARGUMENTS_BUTTON_PREFIX,
    CARD_BUTTON_PREFIX,
    ApprovalCard,
    CatchUpCard,
    approval_button_id,
    arguments_button_id,
    card_button_id,
)

ClickHandler = Callable[[discord.Interaction[Any], int, CardAction], Awaitable[None]]
ApprovalClickHandler = Callable[[discord.Interaction[Any], int, ApprovalAction], Awaitable[None]]
ArgumentsClickHandler = Callable[[discord.Interaction[Any], int], Awaitable[None]]
StopClickHandler = Callable[[discord.Interaction[Any]], Awaitable[None]]
STOP_BUTTON_PREFIX = "tk-stop"


class CardButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=rf"{CARD_BUTTON_PREFIX}:(?P<card_id>[0-9]+):(?P<action>catch_up|fresh)",
):
    """One of the two buttons; the click is handed to the client's ``card_click_handler``."""

    def __init__(self, card_id: int, action: CardAction) -> None:
        primary = action is CardAction.CATCH_UP
        super().__init__(
            discord.ui.Button(
                label=CATCH_UP_LABEL if primary else FRESH_LABEL,
                style=discord.ButtonStyle.primary if primary else discord.ButtonStyle.secondary,
                custom_id=card_button_id(card_id, action),
            )
        )
        self.card_id = card_id
        self.action = action

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CardButton:
        return cls(int(match["card_id"]), CardAction(match["action"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        handler: ClickHandler = interaction.client.card_click_handler
        await handler(interaction, self.card_id, self.action)


def card_view(card: CatchUpCard) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for action in (CardAction.CATCH_UP, CardAction.FRESH):
        view.add_item(CardButton(card.card_id, action))
    return view


class ApprovalButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=rf"{APPROVAL_BUTTON_PREFIX}:(?P<approval_id>[0-9]+):(?P<action>allow|deny)",
):
    """Allow (green) or Deny (red); the click is handed to the client's ``approval_click_handler``."""

    def __init__(self, approval_id: int, action: ApprovalAction) -> None:
        allow = action is ApprovalAction.ALLOW
        super().__init__(
            discord.ui.Button(
                label=ALLOW_LABEL if allow else DENY_LABEL,
                style=discord.ButtonStyle.success if allow else discord.ButtonStyle.danger,
                custom_id=approval_button_id(approval_id, action),
            )
        )
        self.approval_id = approval_id
        self.action = action

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ApprovalButton:
        return cls(int(match["approval_id"]), ApprovalAction(match["action"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        handler: ApprovalClickHandler = interaction.client.approval_click_handler
        await handler(interaction, self.approval_id, self.action)


class ShowArgumentsButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=rf"{ARGUMENTS_BUTTON_PREFIX}:(?P<approval_id>[0-9]+):show_all",
):
    """Show all (grey): the call's full arguments, for the clicker alone (the client's ``arguments_click_handler``)."""

    def __init__(self, approval_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=SHOW_ALL_LABEL, style=discord.ButtonStyle.secondary, custom_id=arguments_button_id(approval_id)
            )
        )
        self.approval_id = approval_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ShowArgumentsButton:
        return cls(int(match["approval_id"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        handler: ArgumentsClickHandler = interaction.client.arguments_click_handler
        await handler(interaction, self.approval_id)


class StopButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=rf"{STOP_BUTTON_PREFIX}:(?P<thread>[0-9]+)",
):
    """Stop (grey) under an answer being written; the click goes to the client's ``stop_click_handler``."""

    def __init__(self, thread: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=STOP_LABEL, style=discord.ButtonStyle.secondary, custom_id=f"{STOP_BUTTON_PREFIX}:{thread}"
            )
        )
        self.thread = thread

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> StopButton:
        return cls(int(match["thread"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        handler: StopClickHandler = interaction.client.stop_click_handler
        await handler(interaction)


def stop_view(thread: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(StopButton(thread))
    return view


def approval_view(card: ApprovalCard, *, show_all: bool) -> discord.ui.View | None:
    """Allow / Deny while the call waits, and Show all when the card cuts some arguments; None for no buttons."""
    view = discord.ui.View(timeout=None)
    if card.buttons_live:
        for action in (ApprovalAction.ALLOW, ApprovalAction.DENY):
            view.add_item(ApprovalButton(card.approval_id, action))
    if show_all:
        view.add_item(ShowArgumentsButton(card.approval_id))
    return view if view.children else None
