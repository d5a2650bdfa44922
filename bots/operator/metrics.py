"""Every Prometheus metric of the bot, and the few functions that feed them.

The metric objects live here and nowhere else; the rest of the code calls the small functions below from a
handful of places: the router (replies, cards), :class:`MeteredThreadLog` (messages logged, commit latency),
and :func:`observe_model_call`, which the composition root hands the LLM client as an observer (latency, time
to first token, tokens, errors by kind). Gauges that are cheaper to read than to maintain (live sessions,
threads waiting) are refreshed when /metrics is scraped (see bots/operator/health.py).

Metrics are off until :func:`enable` (``serve_health`` calls it when METRICS_PORT is set): until then every
function returns at once and prometheus-client is not even imported, which keeps its ~40 ms import off the
start-up of a bot that does not serve metrics.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from agent.llm import ModelCall
from storage.leases import Fence
from storage.protocols import ThreadLog
from storage.records import LoggedMessage

PREFIX = "threadkeeper"
# Model calls run from well under a second to a minute; commits take milliseconds.
MODEL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    """The metric objects, registered in prometheus-client's default registry (once per process)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.messages_logged = Counter(f"{PREFIX}_messages_logged", "User messages logged, by platform", ["platform"])
        self.replies = Counter(f"{PREFIX}_replies", "Replies posted, by platform", ["platform"])
        self.cards_shown = Counter(f"{PREFIX}_cards_shown", '"Where were we?" cards posted, by platform', ["platform"])
        self.cards_resolved = Counter(f"{PREFIX}_cards_resolved", "Cards resolved, by the choice made", ["choice"])
        self.model_latency = Histogram(
            f"{PREFIX}_model_latency_seconds",
            "Duration of a model call, retries included, by kind (answer: streamed; summary: not)",
            ["call"],
            buckets=MODEL_BUCKETS,
        )
        self.time_to_first_token = Histogram(
            f"{PREFIX}_model_time_to_first_token_seconds",
            "From the request to the first streamed text",
            buckets=MODEL_BUCKETS,
        )
        self.catch_up = Histogram(
            f"{PREFIX}_catch_up_seconds", "From a Catch me up click to the caught-up session", buckets=MODEL_BUCKETS
        )
        self.tokens = Counter(
            f"{PREFIX}_model_tokens", "Tokens the provider reported, in (prompt) and out", ["direction"]
        )
        self.model_errors = Counter(f"{PREFIX}_model_errors", "Model calls that failed for good, by kind", ["kind"])
        self.live_sessions = Gauge(f"{PREFIX}_live_sessions", "Conversations held in memory")
        self.commit_latency = Histogram(
            f"{PREFIX}_db_commit_seconds",
            "From asking the log to write to the commit (a message's group commit, or a reply)",
            ["write"],
            buckets=COMMIT_BUCKETS,
        )
        self.threads_waiting = Gauge(
            f"{PREFIX}_threads_waiting", "Threads holding user messages no reply has covered yet"
        )


_metrics: Metrics | None = None


def enable() -> Metrics:
    """Create the metrics (once); from now on the functions below count."""
    global _metrics
    if _metrics is None:
        _metrics = Metrics()
    return _metrics


def reply_posted(platform: str) -> None:
    if _metrics is not None:
        _metrics.replies.labels(platform).inc()


def card_shown(platform: str) -> None:
    if _metrics is not None:
        _metrics.cards_shown.labels(platform).inc()


def card_resolved(choice: str, *, since: float) -> None:
    """A card ended in ``choice`` (caught_up or fresh); ``since`` is the click's ``time.monotonic()``."""
    if _metrics is None:
        return
    _metrics.cards_resolved.labels(choice).inc()
    if choice == "caught_up":
        _metrics.catch_up.observe(time.monotonic() - since)


def observe_model_call(call: ModelCall) -> None:
    """The LLM client's observer: latency, time to first token, tokens, and failures by kind."""
    if _metrics is None:
        return
    _metrics.model_latency.labels("answer" if call.streamed else "summary").observe(call.seconds)
    if call.first_token_s is not None:
        _metrics.time_to_first_token.observe(call.first_token_s)
    if call.failure is not None:
        _metrics.model_errors.labels(call.failure.value).inc()
    _metrics.tokens.labels("in").inc(call.usage.prompt_tokens)
    _metrics.tokens.labels("out").inc(call.usage.completion_tokens)


class MeteredThreadLog:
    """A thread log (either backend) that counts what it logs by platform and times its commits.

    The platform of a thread is remembered from :meth:`ensure_thread`, which every message's thread passes
    through first, so counting needs no extra query. Everything else is handed to the wrapped log as it is.
    """

    def __init__(self, inner: ThreadLog) -> None:
        self._inner = inner
        self._platforms: dict[int, str] = {}
        self.find_thread = inner.find_thread
        self.find_threads = inner.find_threads
        self.threads_holding = inner.threads_holding
        self.latest_platform_id = inner.latest_platform_id
        self.has_messages_before = inner.has_messages_before
        self.set_platform_id = inner.set_platform_id
        self.set_attachments = inner.set_attachments
        self.replace_reply = inner.replace_reply
        self.threads_with_waiting = inner.threads_with_waiting
        self.waiting = inner.waiting
        self.transcript = inner.transcript
        self.visible = inner.visible
        self.all_messages = inner.all_messages
        self.thread = inner.thread
        self.speakers = inner.speakers

    async def ensure_thread(
        self,
        *,
        platform: str,
        workspace: str,
        channel: str,
        thread: str,
        title: str | None,
        now: datetime,
        title_message_id: str | None = None,
    ) -> int:
        thread_id = await self._inner.ensure_thread(
            platform=platform,
            workspace=workspace,
            channel=channel,
            thread=thread,
            title=title,
            now=now,
            title_message_id=title_message_id,
        )
        self._platforms[thread_id] = platform
        return thread_id

    async def record_message(
        self,
        *,
        thread_id: int,
        platform_message_id: str,
        author_id: str,
        author_name: str,
        role: str,
        content: str,
        sent_utc: datetime,
        attachments: list[dict[str, Any]] | None = None,
        now: datetime,
        read: bool = False,
    ) -> tuple[LoggedMessage, bool]:
        started = time.monotonic()
        row, created = await self._inner.record_message(
            thread_id=thread_id,
            platform_message_id=platform_message_id,
            author_id=author_id,
            author_name=author_name,
            role=role,
            content=content,
            sent_utc=sent_utc,
            attachments=attachments,
            now=now,
            read=read,
        )
        if _metrics is not None:
            _metrics.commit_latency.labels("message").observe(time.monotonic() - started)
            if created and row.role == "user":
                _metrics.messages_logged.labels(self._platforms.get(row.thread_id, "unknown")).inc()
        return row, created

    async def record_reply(
        self,
        *,
        thread_id: int,
        platform_message_id: str,
        author_name: str,
        content: str,
        answered_ids: list[int],
        now: datetime,
        fence: Fence | None = None,
    ) -> int | None:
        started = time.monotonic()
        reply_id = await self._inner.record_reply(
            thread_id=thread_id,
            platform_message_id=platform_message_id,
            author_name=author_name,
            content=content,
            answered_ids=answered_ids,
            now=now,
            fence=fence,
        )
        if _metrics is not None:
            _metrics.commit_latency.labels("reply").observe(time.monotonic() - started)
        return reply_id
