"""Slack's agent messaging experience, and the older assistant side panel: suggested prompts and thread titles.

In the agent experience every top-level DM message starts its own thread (one session, as any thread); the
messages tab shows suggested prompts (``assistant.threads.setSuggestedPrompts`` without a ``thread_ts``, when
the tab is opened) and each new thread gets a title from its first message (``assistant.threads.setTitle``).
The older assistant side panel announces a thread with ``assistant_thread_started``; its prompts go to that
thread (with its ``thread_ts``). A workspace where these calls are refused (an app without the agent or
assistant feature, a missing ``assistant:write``) is told once in the log and not asked again; they are only
ever a nicety, never in the way of an answer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bots.router.bounded import BoundedCache
from bots.seam.messages import ThreadKey
from bots.slack.errors import reason_of

log = logging.getLogger(__name__)

TITLE_CHARS = 80
PROMPTED_MAX = 5000  # DM channels whose messages tab got its prompts this process (once an hour each)
PROMPTED_TTL_S = 3600.0
PROMPTS_TITLE = "Try asking"


def title_from(text: str) -> str:
    """A thread's title: its first message's first line, cut at a word to :data:`TITLE_CHARS`."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "New chat")
    if len(line) <= TITLE_CHARS:
        return line
    cut = line[: TITLE_CHARS - 1].rsplit(" ", 1)[0]
    return cut.rstrip(" ,.;:") + "…"


class AgentThreads:
    """The prompts and titles of the bot's DM threads, best effort."""

    def __init__(self, client: AsyncWebClient, *, prompts: Sequence[tuple[str, str]]) -> None:
        self._client = client
        self._prompts = [{"title": title, "message": message} for title, message in prompts]
        self._refused: set[tuple[str, str]] = set()  # (workspace, method)
        self._prompted: BoundedCache[str, bool] = BoundedCache(max_entries=PROMPTED_MAX, ttl_s=PROMPTED_TTL_S)

    async def suggest_prompts(self, *, workspace: str, channel: str, thread_ts: str | None = None) -> None:
        """The suggested prompts: on the messages tab (no ``thread_ts``, once an hour) or in one assistant thread."""
        if not self._prompts or (thread_ts is None and self._prompted.get(channel)):
            return
        kwargs: dict[str, object] = {"channel_id": channel, "prompts": self._prompts, "title": PROMPTS_TITLE}
        if thread_ts is not None:
            kwargs["thread_ts"] = thread_ts
        else:
            self._prompted.put(channel, True)  # before the call: the tab may open twice meanwhile
        if not await self._call(workspace, "assistant.threads.setSuggestedPrompts", kwargs) and thread_ts is None:
            self._prompted.discard(channel)

    async def set_title(self, thread: ThreadKey, first_message: str) -> None:
        await self.rename(thread, title_from(first_message))

    async def rename(self, thread: ThreadKey, title: str) -> None:
        """The DM thread's title (a new thread's, or a neutral one once its first message is deleted)."""
        kwargs: dict[str, object] = {"channel_id": thread.channel, "thread_ts": thread.thread, "title": title}
        await self._call(thread.workspace, "assistant.threads.setTitle", kwargs)

    async def _call(self, workspace: str, method: str, kwargs: dict[str, object]) -> bool:
        if (workspace, method) in self._refused:
            return False
        try:
            if method == "assistant.threads.setTitle":
                await self._client.assistant_threads_setTitle(**kwargs)  # type: ignore[arg-type]
            else:
                await self._client.assistant_threads_setSuggestedPrompts(**kwargs)  # type: ignore[arg-type]
        except SlackApiError as exc:
            log.info("Slack refused %s in workspace %s (%s); not asking again", method, workspace, reason_of(exc))
            self._refused.add((workspace, method))
            return False
        except (SlackClientError, aiohttp.ClientError) as exc:
            log.info("%s failed (%s)", method, reason_of(exc))
            return False
        return True
