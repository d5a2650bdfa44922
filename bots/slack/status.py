"""Slack's assistant status (``assistant.threads.setStatus``) for a reply in progress, where Slack allows it.

Slack shows the status under the thread ("is running files__read_file…") without touching the reply. It is
refused where the workspace or the thread does not allow it (an error such as ``not_allowed`` or
``missing_scope``); a workspace that refused once is remembered and not asked again, and the caller falls back
to a line in the streaming message. A network error or a slow answer costs one status only, never the reply:
the caller falls back for that call and the workspace is asked again next time.

Agent sessions (:class:`AgentSessions`): every thread the bot answers in is one.

``agents.sessions.setStatus`` moves a thread's session between ``processing`` (a turn runs; Slack shows its own
Stop button, whose click arrives as ``agent_session_stopped``), ``active``, ``suspended`` and ``closed``, and
creates the session on first use (the title is sent only then). ``agents.sessions.rename`` changes the title
afterwards: when the message it was made from is deleted or edited, the router renames the session to a neutral
title so the deleted text does not stay on screen. The router drives both through the outbox (``SessionStatus``,
``rename_thread``); this module only calls Slack. A thread without a session (``session_not_found``: the bot
never answered there) has nothing to rename and is no refusal. A rename Slack could not take (refused, or the
network) is kept and sent again with the next call Slack takes in that workspace, so a title made from deleted
text does not outlive the hour the workspace is left alone.

A workspace or app that refuses the methods (not declared as an agent, a missing scope, an older plan) gets
today's behaviour: said once in the log, asked again after an hour, like native streaming (``stream.py``). A
network error or a slow answer costs that one status only. A call is never allowed to hold up a reply.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bots.seam.messages import ThreadKey
from bots.seam.ports import SessionStatus
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


AGENT_SESSIONS_RETRY_AFTER_S = 3600.0
AGENT_SESSIONS_TIMEOUT_S = 2.0
TITLE_LIMIT = 200
PENDING_RENAMES_MAX = 1000  # renames waiting for a workspace that refused them; the oldest go first
NO_SESSION = "session_not_found"


class AgentSessions:
    """setStatus per thread, with the workspaces that refused it remembered for an hour."""

    def __init__(self, client: AsyncWebClient, *, retry_after_s: float = AGENT_SESSIONS_RETRY_AFTER_S) -> None:
        self._client = client
        self._retry_after_s = retry_after_s
        self._refused: dict[str, float] = {}  # workspace -> when it last refused
        self._pending: dict[ThreadKey, str] = {}  # thread -> the title Slack has yet to take

    def refused_in(self, workspace: str) -> bool:
        at = self._refused.get(workspace)
        return at is not None and time.monotonic() - at < self._retry_after_s

    async def set_status(self, thread: ThreadKey, status: SessionStatus, *, title: str | None = None) -> bool:
        """Move the thread's session to ``status`` (creating it, named ``title``); False when Slack did not."""
        if self.refused_in(thread.workspace):
            return False
        body: dict[str, Any] = {"status": status.value, "channel_id": thread.channel, "thread_ts": thread.thread}
        if title:
            body["title"] = title[:TITLE_LIMIT]
        try:
            async with asyncio.timeout(AGENT_SESSIONS_TIMEOUT_S):
                response = await self._client.api_call("agents.sessions.setStatus", json=body)
        except SlackApiError as exc:
            self._refuse(thread.workspace, reason_of(exc))
            return False
        except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
            log.info("could not set the agent session status of %s (%s)", thread, type(exc).__name__)
            return False
        self._refused.pop(thread.workspace, None)
        warning = response.get("warning") if isinstance(response.data, dict) else None
        if warning:
            log.debug("agents.sessions.setStatus in %s warned: %s", thread, warning)
        await self._send_pending(thread.workspace)
        return True

    async def rename(self, thread: ThreadKey, title: str) -> bool:
        """Give the thread's session ``title``; False when Slack did not (it is then sent again later)."""
        self._pending.pop(thread, None)
        if self.refused_in(thread.workspace):
            self._keep(thread, title)
            return False
        body = {"channel_id": thread.channel, "thread_ts": thread.thread, "title": title[:TITLE_LIMIT]}
        try:
            async with asyncio.timeout(AGENT_SESSIONS_TIMEOUT_S):
                await self._client.api_call("agents.sessions.rename", json=body)
        except SlackApiError as exc:
            if reason_of(exc) == NO_SESSION:
                return True  # nothing shows a title for this thread
            self._refuse(thread.workspace, reason_of(exc))
            self._keep(thread, title)
            return False
        except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
            log.info("could not rename the agent session of %s (%s)", thread, type(exc).__name__)
            self._keep(thread, title)
            return False
        self._refused.pop(thread.workspace, None)
        return True

    def _keep(self, thread: ThreadKey, title: str) -> None:
        if len(self._pending) >= PENDING_RENAMES_MAX:
            self._pending.pop(next(iter(self._pending)))
        self._pending[thread] = title

    async def _send_pending(self, workspace: str) -> None:
        """Slack takes calls in ``workspace`` again: the renames it could not take go now."""
        for thread, title in [(t, title) for t, title in self._pending.items() if t.workspace == workspace]:
            if not await self.rename(thread, title):
                return

    def _refuse(self, workspace: str, reason: str) -> None:
        if workspace not in self._refused:
            log.warning(
                "Slack refused agent sessions in workspace %s (%s); threads there show no session status, "
                "trying again every %.0f minutes",
                workspace,
                reason,
                self._retry_after_s / 60,
            )
        self._refused[workspace] = time.monotonic()
