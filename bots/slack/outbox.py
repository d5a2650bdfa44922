"""How threadkeeper looks on Slack: streamed replies with chat.update, and the Block Kit card.

A reply starts as a placeholder posted at once in the thread, then is edited as text arrives, at most about
once a second (Slack allows roughly one write a second per channel). Text past ~3,500 characters continues in
further messages, split on paragraph and line boundaries and never inside a code block.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bots.messages import CardAction, ThreadKey
from bots.ports import CatchUpCard
from bots.render import (
    CARD_BODY,
    CARD_TITLE,
    CATCH_UP_LABEL,
    FRESH_LABEL,
    card_status_line,
    card_text,
    split_message,
    throttled_text,
)
from bots.slack.mrkdwn import to_mrkdwn

log = logging.getLogger(__name__)

CHUNK_LIMIT = 3500
EDIT_INTERVAL_S = 1.0
PLACEHOLDER = "_Thinking…_"
INTERRUPTED = "\n\n_(reply interrupted)_"


class SlackOutbox:
    """ThreadOutbox for Slack, on the app's AsyncWebClient."""

    def __init__(self, client: AsyncWebClient, *, edit_interval_s: float = EDIT_INTERVAL_S) -> None:
        self._client = client
        self._edit_interval_s = edit_interval_s

    async def stream_reply(self, *, thread: ThreadKey, deltas: AsyncIterator[str]) -> list[str]:
        snapshots = throttled_text(deltas, interval_s=self._edit_interval_s)
        # Ask the model first, then post the placeholder while it thinks: the post never delays the request.
        first_text = asyncio.ensure_future(anext(snapshots, None))
        posted: list[str] = []
        shown: list[str] = []
        try:
            placeholder = await self._client.chat_postMessage(
                channel=thread.channel, thread_ts=thread.thread, text=PLACEHOLDER
            )
            posted.append(str(placeholder["ts"]))
            shown.append(PLACEHOLDER)
            text = await first_text
            while text is not None:
                await self._show(thread, to_mrkdwn(text), posted, shown)
                text = await anext(snapshots, None)
        except BaseException:
            first_text.cancel()
            if posted:
                await self._interrupted(thread, posted, shown)
            raise
        return posted

    async def _show(self, thread: ThreadKey, text: str, posted: list[str], shown: list[str]) -> None:
        for index, chunk in enumerate(split_message(text, limit=CHUNK_LIMIT)):
            if index < len(posted):
                if chunk != shown[index]:
                    posted[index] = await self._update_or_repost(thread, posted[index], chunk)
                    shown[index] = chunk
            else:
                response = await self._client.chat_postMessage(
                    channel=thread.channel, thread_ts=thread.thread, text=chunk
                )
                posted.append(str(response["ts"]))
                shown.append(chunk)

    async def _update_or_repost(self, thread: ThreadKey, ts: str, text: str) -> str:
        """Edit a reply in progress; if Slack refuses (deleted meanwhile, a network error), go on in a new message.

        Returns the ts the rest of the reply edits. The old message, if it still exists, is removed (best
        effort): the new one holds all its text, and a stale "Thinking…" must not stay behind.
        """
        try:
            await self._client.chat_update(channel=thread.channel, ts=ts, text=text)
        except (SlackClientError, aiohttp.ClientError) as exc:
            reason = _reason(exc)
            log.info("could not update reply %s in %s (%s); posting the rest anew", ts, thread, reason)
            response = await self._client.chat_postMessage(channel=thread.channel, thread_ts=thread.thread, text=text)
            if reason != "message_not_found":
                await self._delete_quietly(thread, ts)
            return str(response["ts"])
        return ts

    async def _delete_quietly(self, thread: ThreadKey, ts: str) -> None:
        try:
            await self._client.chat_delete(channel=thread.channel, ts=ts)
        except (SlackClientError, aiohttp.ClientError) as exc:
            log.info("could not remove the superseded reply %s in %s (%s)", ts, thread, _reason(exc))

    async def _interrupted(self, thread: ThreadKey, posted: list[str], shown: list[str]) -> None:
        """Leave nothing misleading: drop an untouched placeholder, mark partial text as cut off."""
        try:
            if shown == [PLACEHOLDER]:
                await self._client.chat_delete(channel=thread.channel, ts=posted[0])
            else:
                await self._client.chat_update(channel=thread.channel, ts=posted[-1], text=shown[-1] + INTERRUPTED)
        except (SlackClientError, aiohttp.ClientError) as exc:
            log.warning("could not tidy up an interrupted reply in %s: %s", thread, _reason(exc))

    async def post_notice(self, *, thread: ThreadKey, text: str) -> None:
        await self._client.chat_postMessage(channel=thread.channel, thread_ts=thread.thread, text=text)

    async def post_card(self, *, card: CatchUpCard) -> str:
        response = await self._client.chat_postMessage(
            channel=card.thread.channel, thread_ts=card.thread.thread, text=card_text(card), blocks=card_blocks(card)
        )
        return str(response["ts"])

    async def update_card(self, *, card: CatchUpCard, message_id: str) -> None:
        await self._client.chat_update(
            channel=card.thread.channel, ts=message_id, text=card_text(card), blocks=card_blocks(card)
        )

    async def tell_privately(self, *, channel: str, thread_ts: str | None, user: str, text: str) -> None:
        kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": text}
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        await self._client.chat_postEphemeral(**kwargs)


def _reason(exc: Exception) -> str:
    """A failed call in a few words: Slack's error code, else the kind of network error."""
    if isinstance(exc, SlackApiError) and isinstance(exc.response.data, dict):
        return str(exc.response.data.get("error") or exc.response.status_code)
    return type(exc).__name__


def card_blocks(card: CatchUpCard) -> list[dict[str, Any]]:
    """The card in Block Kit: a section, then the two buttons while it waits, or the outcome once chosen."""
    body = CARD_BODY if not card.note else f"{CARD_BODY}\n{card.note}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{CARD_TITLE}*\n{body}"}},
    ]
    if card.buttons_live:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"tk-card-{card.card_id}",
                "elements": [
                    _button(CATCH_UP_LABEL, card.button_id(CardAction.CATCH_UP), primary=True),
                    _button(FRESH_LABEL, card.button_id(CardAction.FRESH), primary=False),
                ],
            }
        )
    else:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": card_status_line(card)}]})
    return blocks


def _button(label: str, value: str, *, primary: bool) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": value,
        "value": value,
    }
    if primary:
        button["style"] = "primary"
    return button
