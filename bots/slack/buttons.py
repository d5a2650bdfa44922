"""The Slack listeners of the bot's own buttons: the "Where were we?" card, a tool call's Allow / Deny / Show all.

A click is acknowledged at once (Slack never redelivers one); the router resolves it after the ack, in a task
of the adapter (``after_ack``), and a note for the clicker, if the router has one, is shown to them privately.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from slack_bolt.async_app import AsyncApp

from bots.router.threads import ThreadRouter
from bots.seam.messages import ApprovalClick, ArgumentsClick, Author, CardClick
from bots.seam.ports import ClickResult
from bots.slack import translate
from bots.slack.agent_events import AfterAck
from bots.slack.arguments import full_arguments_blocks
from bots.slack.outbox import SlackOutbox

log = logging.getLogger(__name__)

BUTTON = re.compile(r"^tk-card:")
APPROVAL_BUTTON = re.compile(r"^tk-approval:")
ARGUMENTS_BUTTON = re.compile(r"^tk-args:")


class SlackButtons:
    """Listeners for the card and approval buttons, and for any button nobody else claims."""

    def __init__(
        self,
        *,
        router: ThreadRouter,
        outbox: SlackOutbox,
        after_ack: AfterAck,
        named: Callable[[Author], Awaitable[Author]],
    ) -> None:
        self._router = router
        self._outbox = outbox
        self._after_ack = after_ack
        self._named = named

    def register(self, app: AsyncApp) -> None:
        app.action(BUTTON)(self._on_button)
        app.action(APPROVAL_BUTTON)(self._on_approval_button)
        app.action(ARGUMENTS_BUTTON)(self._on_arguments_button)

    def register_fallback(self, app: AsyncApp) -> None:
        """Last of all the actions: a button nobody else claims is acknowledged and logged."""
        app.action(re.compile(".*"))(self._on_unknown_button)

    async def _on_button(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        """Acknowledge at once; the click itself runs after the ack (Slack never redelivers a click)."""
        await ack()
        click = translate.click_from(body, action)
        if click is None:
            log.info("ignoring an unknown button %r", action.get("action_id"))
            return
        self._after_ack(self._click(click, body), what="a card button click")

    async def _on_approval_button(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        """Allow / Deny: acknowledged at once like a card button; the router decides after the ack."""
        await ack()
        click = translate.approval_click_from(body, action)
        if click is None:
            log.info("ignoring an unknown button %r", action.get("action_id"))
            return
        self._after_ack(self._approval_click(click, body), what="an approval button click")

    async def _on_arguments_button(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        """Show all: acknowledged at once; the full arguments go to the clicker alone after the ack."""
        await ack()
        click = translate.arguments_click_from(body, action)
        if click is None:
            log.info("ignoring an unknown button %r", action.get("action_id"))
            return
        self._after_ack(self._arguments_click(click, body), what="a Show all click")

    async def _click(self, click: CardClick, body: Mapping[str, Any]) -> None:
        click = dataclasses.replace(click, user=await self._named(click.user))
        if click.thread is not None:
            team = (body.get("user") or {}).get("team_id")  # the clicker's own team
            self._outbox.remember_asker(click.thread, click.user.id, team=str(team) if team else None)
        result = await self._router.handle_click(click)
        await self._tell_clicker(result, click.user, body)

    async def _approval_click(self, click: ApprovalClick, body: Mapping[str, Any]) -> None:
        click = dataclasses.replace(click, user=await self._named(click.user))
        result = await self._router.handle_approval_click(click)
        await self._tell_clicker(result, click.user, body)

    async def _arguments_click(self, click: ArgumentsClick, body: Mapping[str, Any]) -> None:
        result = await self._router.handle_arguments_click(click)
        await self._tell_clicker(result, click.user, body)

    async def _tell_clicker(self, result: ClickResult, user: Author, body: Mapping[str, Any]) -> None:
        channel = (body.get("channel") or {}).get("id")
        thread_ts = (body.get("message") or {}).get("thread_ts")
        if not channel:
            return
        if result.private_note:
            await self._outbox.tell_privately(
                channel=channel, thread_ts=thread_ts, user=user.id, text=result.private_note
            )
        if result.arguments is not None:
            shown = result.arguments
            await self._outbox.tell_privately(
                channel=channel,
                thread_ts=thread_ts,
                user=user.id,
                text=f"The full arguments of {shown.tool}",
                blocks=full_arguments_blocks(shown),
            )

    async def _on_unknown_button(self, ack: Any, action: dict[str, Any]) -> None:
        await ack()
        log.info("ignoring an unknown button %r", action.get("action_id"))
