"""Slack's native text streaming (``chat.startStream`` / ``appendStream`` / ``stopStream``) for one reply.

``SlackStream`` is the :class:`bots.replies.native_stream.NativeStream` of a Slack thread: markdown as the model wrote
it (the streaming methods render markdown themselves, up to 12,000 characters a call), the asker as
``recipient_user_id`` / ``recipient_team_id`` outside DMs (Slack requires them there), the tool progress line
as a ``task_update`` chunk in the stream's timeline (which works in any thread, where
``assistant.threads.setStatus`` is refused outside assistant threads), and the feedback buttons with the stop
of a completed answer.

``NativeStreaming`` remembers, per workspace, that Slack refused the streaming methods (an error code: an older
workspace, ``unknown_method``, an Enterprise policy): that workspace gets posted and updated messages, said
once in the log, and is asked again after :data:`NATIVE_RETRY_AFTER_S`. A network error costs one reply's
native stream only.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bots.replies.native_stream import StreamRefused
from bots.seam.messages import ThreadKey
from bots.slack.errors import reason_of as _reason
from bots.slack.feedback import feedback_blocks
from bots.slack.translate import is_dm

log = logging.getLogger(__name__)

STREAM_LIMIT = 11_500  # characters a streamed message holds: Slack takes 12,000 a call; mention guards add some
NATIVE_RETRY_AFTER_S = 3600.0
ENDED_BY_SLACK = "message_not_in_streaming_state"  # Slack's own Stop ended the stream (agent sessions)
# Slack would read <@U…>, <!here>, <#C…> as a mention or a link. A "<" that ends a call is guarded too: the next
# append may begin with "!here>", and Slack renders the stream's calls as one text.
_MENTION = re.compile(r"<(?=[@!#]|\Z)")


def guarded(markdown: str) -> str:
    """Model text cannot ping people or channels: a zero-width space after each ``<`` that would start one."""
    return _MENTION.sub("<\u200b", markdown)


@dataclass(frozen=True, slots=True)
class Asker:
    """Whom a stream outside a DM is for: the person and their own team."""

    user: str
    team: str


class NativeStreaming:
    """Which workspaces refused the streaming methods, and since when (a handful per process)."""

    def __init__(self, *, retry_after_s: float = NATIVE_RETRY_AFTER_S) -> None:
        self._retry_after_s = retry_after_s
        self._refused: dict[str, float] = {}  # workspace -> when it last refused

    def refused_in(self, workspace: str) -> bool:
        at = self._refused.get(workspace)
        return at is not None and time.monotonic() - at < self._retry_after_s

    def refuse(self, workspace: str, reason: str) -> None:
        if workspace not in self._refused:
            log.warning(
                "Slack refused native streaming in workspace %s (%s); posting and updating replies there instead, "
                "trying again every %.0f minutes",
                workspace,
                reason,
                self._retry_after_s / 60,
            )
        self._refused[workspace] = time.monotonic()


class SlackStream:
    """The native stream calls of one reply in one thread (see ``bots/replies/native_stream.py``)."""

    limit = STREAM_LIMIT

    def __init__(
        self,
        client: AsyncWebClient,
        thread: ThreadKey,
        *,
        asker: Asker | None,
        streaming: NativeStreaming,
        status_shown: bool,
    ) -> None:
        self._client = client
        self._thread = thread
        self._asker = asker
        self._streaming = streaming
        self._tasks = itertools.count(1)
        self._task: tuple[str, str] | None = None  # the task chunk in progress: id, title
        self.ids: list[str] = []
        self._ended: set[str] = set()  # streams Slack's Stop ended: what follows goes in a plain message
        self._held = ""
        # Where the assistant status says "thinking" the stream opens with the first text; elsewhere the opened
        # stream is the only sign of life, so it opens while the model is asked.
        self.start_at_once = not status_shown

    async def start(self) -> str:
        if self._streaming.refused_in(self._thread.workspace):
            raise StreamRefused
        kwargs: dict[str, Any] = {
            "channel": self._thread.channel,
            "thread_ts": self._thread.thread,
            "task_display_mode": "timeline",
        }
        if not is_dm(self._thread):
            if not self._asker:
                log.info("no asker known in %s to stream to; posting this reply", self._thread)
                raise StreamRefused
            kwargs |= {"recipient_user_id": self._asker.user, "recipient_team_id": self._asker.team}
        try:
            response = await self._client.chat_startStream(**kwargs)
        except SlackApiError as exc:
            self._streaming.refuse(self._thread.workspace, _reason(exc))
            raise StreamRefused from exc
        except (SlackClientError, aiohttp.ClientError) as exc:
            log.info("could not start a native stream in %s (%s); posting this reply", self._thread, _reason(exc))
            raise StreamRefused from exc
        self.ids.append(str(response["ts"]))
        return self.ids[-1]

    async def append(self, message_id: str, text: str, *, status: str | None) -> None:
        chunks = self._status_chunks(status) + self._text_chunks(text)
        if message_id in self._ended:
            self._held += text
        elif chunks:
            try:
                await self._client.chat_appendStream(channel=self._thread.channel, ts=message_id, chunks=chunks)
            except SlackApiError as exc:
                self._ended_by_slack(message_id, exc)
                self._held += text

    async def stop(self, message_id: str, text: str, *, complete: bool) -> None:
        """End the stream with ``text``; after Slack's own Stop ended it, ``text`` is posted as a message instead
        (the answer's closing note saying who stopped it)."""
        kwargs: dict[str, Any] = {"channel": self._thread.channel, "ts": message_id}
        chunks = self._status_chunks(None) + self._text_chunks(text)
        if chunks:
            kwargs["chunks"] = chunks
        if complete:
            kwargs["blocks"] = feedback_blocks(answer_id=self.ids[0])
        if message_id not in self._ended:
            try:
                await self._client.chat_stopStream(**kwargs)
                return
            except SlackApiError as exc:
                self._ended_by_slack(message_id, exc)
        rest, self._held = (self._held + text).strip(), ""
        if rest:
            await self._client.chat_postMessage(
                channel=self._thread.channel, thread_ts=self._thread.thread, markdown_text=guarded(rest)
            )

    def _ended_by_slack(self, message_id: str, exc: SlackApiError) -> None:
        """Re-raise ``exc`` unless it says Slack ended the stream itself (its Stop button)."""
        if _reason(exc) != ENDED_BY_SLACK:
            raise exc
        log.info("Slack ended the stream %s in %s (its Stop); the rest goes in a message", message_id, self._thread)
        self._ended.add(message_id)

    async def delete(self, message_id: str) -> None:
        try:
            await self._client.chat_delete(channel=self._thread.channel, ts=message_id)
        except (SlackClientError, aiohttp.ClientError) as exc:
            log.info("could not remove the streamed message %s in %s (%s)", message_id, self._thread, _reason(exc))

    @staticmethod
    def _text_chunks(text: str) -> list[dict[str, Any]]:
        return [{"type": "markdown_text", "text": guarded(text)}] if text else []

    def _status_chunks(self, status: str | None) -> list[dict[str, Any]]:
        """The task chunks that bring the timeline to ``status``: the one in progress completes, a new one starts."""
        if self._task is not None and self._task[1] == status:
            return []
        chunks: list[dict[str, Any]] = []
        if self._task is not None:
            chunks.append({"type": "task_update", "id": self._task[0], "title": self._task[1], "status": "complete"})
            self._task = None
        if status:
            self._task = (f"tk-task-{next(self._tasks)}", status)
            chunks.append({"type": "task_update", "id": self._task[0], "title": status, "status": "in_progress"})
        return chunks
