"""Every Prometheus metric of the bot, and the few functions that feed them.

The metric objects live here and nowhere else; the rest of the code calls the small functions below from a
handful of places: the router (replies, cards), :class:`MeteredThreadLog` (messages logged, commit latency),
and :func:`observe_model_call`, which the composition root hands the LLM client as an observer (latency, time
to first token, tokens, errors by kind). Gauges that are cheaper to read than to maintain (live sessions,
threads waiting) are refreshed when /metrics is scraped (see bots/health.py).

Counting is always on and costs a dict lookup and an addition; METRICS_PORT only decides whether anyone can
read them.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from agent.llm import ModelCall
from storage.db import Database
from storage.log import LoggedMessage, ThreadLog

PREFIX = "threadkeeper"
# Model calls run from well under a second to a minute; commits take milliseconds.
MODEL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

MESSAGES_LOGGED = Counter(f"{PREFIX}_messages_logged", "User messages logged, by platform", ["platform"])
REPLIES = Counter(f"{PREFIX}_replies", "Replies posted, by platform", ["platform"])
CARDS_SHOWN = Counter(f"{PREFIX}_cards_shown", '"Where were we?" cards posted, by platform', ["platform"])
CARDS_RESOLVED = Counter(f"{PREFIX}_cards_resolved", "Cards resolved, by the choice made", ["choice"])
MODEL_LATENCY = Histogram(
    f"{PREFIX}_model_latency_seconds",
    "Duration of a model call, retries included, by kind (answer: streamed; summary: not)",
    ["call"],
    buckets=MODEL_BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    f"{PREFIX}_model_time_to_first_token_seconds", "From the request to the first streamed text", buckets=MODEL_BUCKETS
)
CATCH_UP = Histogram(
    f"{PREFIX}_catch_up_seconds", "From a Catch me up click to the caught-up session", buckets=MODEL_BUCKETS
)
TOKENS = Counter(f"{PREFIX}_model_tokens", "Tokens the provider reported, in (prompt) and out", ["direction"])
MODEL_ERRORS = Counter(f"{PREFIX}_model_errors", "Model calls that failed for good, by kind", ["kind"])
LIVE_SESSIONS = Gauge(f"{PREFIX}_live_sessions", "Conversations held in memory")
COMMIT_LATENCY = Histogram(
    f"{PREFIX}_db_commit_seconds",
    "From asking the log to write to the commit (a message's group commit, or a reply)",
    ["write"],
    buckets=COMMIT_BUCKETS,
)
THREADS_WAITING = Gauge(f"{PREFIX}_threads_waiting", "Threads holding user messages no reply has covered yet")


def reply_posted(platform: str) -> None:
    REPLIES.labels(platform).inc()


def card_shown(platform: str) -> None:
    CARDS_SHOWN.labels(platform).inc()


def card_resolved(choice: str, *, since: float) -> None:
    """A card ended in ``choice`` (caught_up or fresh); ``since`` is the click's ``time.monotonic()``."""
    CARDS_RESOLVED.labels(choice).inc()
    if choice == "caught_up":
        CATCH_UP.observe(time.monotonic() - since)


def observe_model_call(call: ModelCall) -> None:
    """The LLM client's observer: latency, time to first token, tokens, and failures by kind."""
    MODEL_LATENCY.labels("answer" if call.streamed else "summary").observe(call.seconds)
    if call.first_token_s is not None:
        TIME_TO_FIRST_TOKEN.observe(call.first_token_s)
    if call.failure is not None:
        MODEL_ERRORS.labels(call.failure.value).inc()
    TOKENS.labels("in").inc(call.usage.prompt_tokens)
    TOKENS.labels("out").inc(call.usage.completion_tokens)


class MeteredThreadLog(ThreadLog):
    """The thread log, counting what it logs by platform and timing its commits.

    The platform of a thread is remembered from :meth:`ensure_thread`, which every message's thread passes
    through first, so counting needs no extra query.
    """

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._platforms: dict[int, str] = {}

    async def ensure_thread(self, *, platform: str, **columns: Any) -> int:
        thread_id = await super().ensure_thread(platform=platform, **columns)
        self._platforms[thread_id] = platform
        return thread_id

    async def record_message(self, **columns: Any) -> tuple[LoggedMessage, bool]:
        started = time.monotonic()
        row, created = await super().record_message(**columns)
        COMMIT_LATENCY.labels("message").observe(time.monotonic() - started)
        if created and row.role == "user":
            MESSAGES_LOGGED.labels(self._platforms.get(row.thread_id, "unknown")).inc()
        return row, created

    async def record_reply(self, **columns: Any) -> None:
        started = time.monotonic()
        await super().record_reply(**columns)
        COMMIT_LATENCY.labels("reply").observe(time.monotonic() - started)
