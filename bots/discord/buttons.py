"""The card's two buttons as a discord.py ``DynamicItem``: they survive any number of restarts.

discord.py routes a click on any message (one this process never sent, too) to the item whose template
matches the custom id, ``tk-card:<card id>:<action>``. The card id leads the router to the thread through
SQLite; nothing about the card lives in memory.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bots.messages import CardAction
from bots.ports import CARD_BUTTON_PREFIX, CatchUpCard, card_button_id
from bots.render import CATCH_UP_LABEL, FRESH_LABEL

ClickHandler = Callable[[discord.Interaction[Any], int, CardAction], Awaitable[None]]


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
