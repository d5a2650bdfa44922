"""The Slack listeners of the AI-app features: the assistant side panel, the messages tab, feedback clicks, and
the Stop of an agent session (``agent_session_stopped``, handed to the router as a ``StopRequest``).

They translate and hand over, like the adapter's other listeners: every Web API call runs after the ack
(``after_ack``), a feedback click is recorded by the router, and the clicker is thanked privately.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from bots.router.threads import ThreadRouter
from bots.seam.messages import Author, StopRequest
from bots.slack import translate
from bots.slack.assistant import AgentThreads
from bots.slack.feedback import FEEDBACK_THANKS, NEGATIVE, POSITIVE, FeedbackClick, feedback_click_from
from bots.slack.outbox import SlackOutbox

log = logging.getLogger(__name__)


class AfterAck(Protocol):
    def __call__(self, work: Coroutine[Any, Any, None], *, what: str) -> None:
        """Run ``work`` once the listener has returned (and bolt has acknowledged)."""


class AgentEvents:
    """Listeners for the assistant panel, the messages tab and the feedback buttons."""

    def __init__(
        self,
        *,
        router: ThreadRouter,
        outbox: SlackOutbox,
        threads: AgentThreads,
        after_ack: AfterAck,
        named: Callable[[Author], Awaitable[Author]],
    ) -> None:
        self._router = router
        self._outbox = outbox
        self.threads = threads
        self._after_ack = after_ack
        self._named = named

    async def on_assistant_thread_started(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        """The older assistant side panel opened a thread: its suggested prompts, after the ack."""
        thread = event.get("assistant_thread") or {}
        channel, thread_ts = thread.get("channel_id"), thread.get("thread_ts")
        if isinstance(channel, str) and isinstance(thread_ts, str):
            self._after_ack(
                self.threads.suggest_prompts(
                    workspace=translate.team_of(body, event), channel=channel, thread_ts=thread_ts
                ),
                what="suggesting prompts",
            )

    async def on_assistant_context_changed(self) -> None:
        """The user switched channels with the side panel open; nothing to do (the thread stays one session)."""

    async def on_home_opened(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        """The messages tab opened (the agent experience): its suggested prompts, after the ack."""
        channel = event.get("channel")
        if event.get("tab") == "messages" and isinstance(channel, str):
            self._after_ack(
                self.threads.suggest_prompts(workspace=translate.team_of(body, event), channel=channel),
                what="suggesting prompts",
            )

    async def on_session_stopped(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        """Someone pressed Slack's Stop on the thread's agent session: the router stops the turn, after the ack.

        Slack has already stopped the streams it names (``streaming_message_ts``); the router ends the turn.
        """
        channel, thread_ts, user = event.get("channel"), event.get("thread_ts"), event.get("user")
        if not (isinstance(channel, str) and isinstance(thread_ts, str) and isinstance(user, str)):
            log.info("ignoring an agent_session_stopped event that names no thread or user")
            return
        thread = translate.thread_of(team=translate.team_of(body, event), channel=channel, ts=thread_ts, thread_ts=None)
        self._after_ack(self._stop(StopRequest(thread, Author(user, user), raw=event)), what="a stop")

    async def _stop(self, request: StopRequest) -> None:
        user = await self._named(request.user)
        result = await self._router.handle_stop(StopRequest(request.thread, user, raw=request.raw))
        if result.private_note:
            await self._outbox.tell_privately(
                channel=request.thread.channel, thread_ts=request.thread.thread, user=user.id, text=result.private_note
            )

    async def on_feedback(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        """👍 / 👎: acknowledged at once; recorded and confirmed to the clicker after the ack."""
        await ack()
        click = feedback_click_from(body, action)
        if click is None:
            log.info("ignoring a feedback click that names no answer")
            return
        self._after_ack(self._feedback(click), what="a feedback click")

    async def _feedback(self, click: FeedbackClick) -> None:
        user = await self._named(click.user)
        recorded = await self._router.handle_feedback(
            thread=click.thread, answer_id=click.answer_id, user=user, positive=click.positive
        )
        if not recorded:
            log.info("feedback on %s in %s names no logged answer; not recorded", click.answer_id, click.thread)
            return
        await self._outbox.tell_privately(
            channel=click.thread.channel,
            thread_ts=click.thread.thread,
            user=user.id,
            text=FEEDBACK_THANKS[POSITIVE if click.positive else NEGATIVE],
        )
