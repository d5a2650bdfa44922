"""A Slack thread's earlier messages, read when a mention brings the bot into it (``bots/router/joining.py``), and a
waiting message's files read again after a restart (``bots/files/refetching.py``).

``conversations.replies`` reads a thread oldest first, so every page up to the mention is read and only the newest
``limit`` kept (at most :data:`HISTORY_PAGES` of :data:`HISTORY_PAGE`). Each message is translated as a delivered
one is (``translate.message_from``); bots' messages and people the allowlists exclude are left out. A refusal
(``missing_scope``: ``channels:history`` / ``groups:history``, ``not_in_channel``, or ``ratelimited`` once the
client's retries are spent) is :class:`~bots.seam.ports.HistoryRefused`: the router answers with what it has.

This runs after the mention's event was acknowledged (the router reads the history of a thread it joins after
logging the mention), so it may take as long as Slack makes it: conversations.replies is a Tier 3 method, limited
far lower for apps outside the Marketplace, and the client's rate-limit handler waits out each 429's Retry-After.

Both run outside any bolt request (after the acknowledgement, at the next start, on another worker), so each call
names the thread's workspace itself (``acting_for_thread``): in "Add to Slack" mode it carries that workspace's
token, never another's.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bots.seam.messages import Attachment, IncomingMessage, ThreadKey
from bots.seam.ports import FilesRefused, HistoryRefused
from bots.slack import translate
from bots.slack.access import Check, Origin, is_allowed
from bots.slack.errors import slack_error
from bots.slack.install.workspaces import acting_for_thread

log = logging.getLogger(__name__)

HISTORY_PAGE = 200  # replies per conversations.replies page (Slack advises at most 200)
HISTORY_PAGES = 50  # pages read to reach the newest part of a long thread on joining it


class SlackHistory:
    """``ThreadHistory`` and ``MessageFiles`` for Slack threads."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        checks: list[Check],
        bot_user_id: Callable[[], str | None],
        display_name: Callable[[str], Awaitable[str]],
        download_headers: Callable[[], Awaitable[dict[str, str]]],
    ) -> None:
        self._client = client
        self._checks = checks
        self._bot_user_id = bot_user_id
        self._display_name = display_name
        self._download_headers = download_headers

    async def read_history(self, *, thread: ThreadKey, before: str, limit: int) -> list[IncomingMessage]:
        """``ThreadHistory``: the ``limit`` newest of people's messages before ``before``, oldest first."""
        with acting_for_thread(thread):
            return await self._read_history(thread, before=before, limit=limit)

    async def message_files(self, *, thread: ThreadKey, message_id: str) -> tuple[Attachment, ...] | None:
        """``MessageFiles``: a waiting message's files with fresh sources, after a restart lost the first ones:
        ``conversations.replies`` narrowed to its ts (the thread's parent may come along). None when Slack no
        longer has the message; a refusal is :class:`FilesRefused`."""
        with acting_for_thread(thread):
            try:
                response = await self._client.conversations_replies(
                    channel=thread.channel, ts=thread.thread, oldest=message_id, latest=message_id, inclusive=True
                )
            except SlackApiError as exc:
                if slack_error(exc) == "thread_not_found":
                    return None
                raise FilesRefused(f"Slack answered {slack_error(exc)} to conversations.replies") from None
            except (SlackClientError, aiohttp.ClientError) as exc:
                raise FilesRefused(f"conversations.replies failed ({type(exc).__name__})") from None
            headers = await self._download_headers()
        found = [m for m in response.get("messages") or [] if isinstance(m, Mapping) and m.get("ts") == message_id]
        return translate.attachments_of(found[0], download_headers=headers) if found else None

    async def _read_history(self, thread: ThreadKey, *, before: str, limit: int) -> list[IncomingMessage]:
        kept: deque[Mapping[str, Any]] = deque(maxlen=limit)
        cursor: str | None = None
        for _ in range(HISTORY_PAGES):
            page: dict[str, Any] = {"cursor": cursor} if cursor else {}
            try:
                response = await self._client.conversations_replies(
                    channel=thread.channel, ts=thread.thread, latest=before, inclusive=False, limit=HISTORY_PAGE, **page
                )
            except SlackApiError as exc:
                raise HistoryRefused(f"Slack answered {slack_error(exc)} to conversations.replies") from None
            for event in response.get("messages") or []:
                if isinstance(event, Mapping) and self._is_users_message(event) and _before(event, before):
                    kept.append(event)
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                break
        return [message for event in kept if (message := await self._translated(thread, event)) is not None]

    def _is_users_message(self, event: Mapping[str, Any]) -> bool:
        return translate.is_users_message(event, bot_user_id=self._bot_user_id())

    async def _translated(self, thread: ThreadKey, event: Mapping[str, Any]) -> IncomingMessage | None:
        user, team = str(event.get("user") or ""), str(event.get("team") or thread.workspace)
        if not is_allowed(Origin(team=team, channel=thread.channel, user=user), self._checks):
            return None
        body = {"authorizations": [{"team_id": thread.workspace}]}  # the thread's key, as its events make it
        try:
            return translate.message_from(
                body,
                {**event, "channel": thread.channel},
                bot_user_id=self._bot_user_id(),
                display_name=await self._display_name(user),
                download_headers=await self._download_headers(),
            )
        except translate.SlackPayloadError as exc:
            log.info("leaving out a malformed message of %s's history: %s", thread, exc)
            return None


def _before(event: Mapping[str, Any], ts: str) -> bool:
    """The message was sent before the one with ``ts`` (Slack's ts order is time order)."""
    try:
        return float(str(event.get("ts"))) < float(ts)
    except ValueError:
        return False
