"""Slack's assistant status (``assistant.threads.setStatus``) for a reply in progress, where Slack allows it.

Slack shows the status under the thread ("is running files__read_file…") without touching the reply. It is
refused where the workspace or the thread does not allow it (an error such as ``not_allowed`` or
``missing_scope``); a workspace that refused once is remembered and not asked again, and the caller falls back
to a line in the streaming message. A network error or a slow answer costs one status only, never the reply:
the caller falls back for that call and the workspace is asked again next time.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bots.router.messages import ThreadKey
from bots.slack.errors import reason_of
from bots.slack.translate import is_dm

log = logging.getLogger(__name__)

SET_STATUS_TIMEOUT_S = 2.0  # a tool waits on this call: never long


class AssistantStatus:
    """setStatus per thread, with the workspaces that refused it remembered for the process's life."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._refused: set[tuple[str, bool]] = set()  # (workspace, in a DM); a handful per process
        self._shown: set[ThreadKey] = set()

    def refused_in(self, workspace: str, *, dm: bool = False) -> bool:
        return (workspace, dm) in self._refused

    async def set(self, thread: ThreadKey, text: str | None, *, loading: list[str] | None = None) -> bool:
        """Show ``text`` (or clear it) as the thread's assistant status; False when the caller must fall back.

        ``loading`` are the lines Slack rotates through meanwhile. A refusal is remembered apart for DMs (the
        assistant and agent threads, where Slack allows the status) and for channel threads (where it may not).
        """
        where = (thread.workspace, is_dm(thread))
        if where in self._refused:
            return False
        if text is None and thread not in self._shown:
            return True  # nothing of ours to clear
        try:
            async with asyncio.timeout(SET_STATUS_TIMEOUT_S):
                await self._client.assistant_threads_setStatus(
                    channel_id=thread.channel,
                    thread_ts=thread.thread,
                    status=text or "",
                    loading_messages=loading if text and loading else None,
                )
        except SlackApiError as exc:
            log.info(
                "Slack refused the assistant status in workspace %s (%s); using a line in the reply there instead",
                thread.workspace,
                reason_of(exc),
            )
            self._refused.add(where)
            self._shown.discard(thread)
            return False
        except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
            log.info("could not set the assistant status in %s (%s)", thread, type(exc).__name__)
            return False
        if text:
            self._shown.add(thread)
        else:
            self._shown.discard(thread)
        return True

    async def clear(self, thread: ThreadKey) -> None:
        """At the end of a reply: a status of ours left set goes (Slack would keep it up to two minutes)."""
        if thread in self._shown:
            await self.set(thread, None)
