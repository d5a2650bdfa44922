"""UsageRecorder: tokens and cost of every answer and summary, into SQLite, after the reply is posted.

The LLM client calls :meth:`UsageRecorder.observe` when a call finishes; that only appends the call to the
current *scope*, a context variable the router opens with :meth:`begin` (which thread, whose message) for a
turn or a catch-up. :meth:`settle` closes the scope once the reply is posted (or has failed) and hands its
calls to a background task that counts tokens the provider did not report, prices them from litellm's local
cost map on a worker thread, and writes them in one insert. Nothing of this runs before the first token.

USER_DAILY_TOKENS caps the tokens spent for one person per UTC day: :meth:`refuse_over_cap` posts a polite
note instead of an answer once the cap is reached. Calls are attributed to the author of the newest message
a turn answers (a catch-up to whoever clicked).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime

from agent.llm import ModelCall, price_calls
from bots.log_escape import escape_controls
from bots.messages import ThreadKey
from bots.ports import ThreadOutbox
from storage.protocols import UsageLog
from storage.records import Grouping, UsageRow, UsageTotal

log = logging.getLogger(__name__)

CAP_NOTE = (
    "You've reached today's limit of {cap:,} tokens with me, so I'll pause answering you until midnight UTC. "
    "Others in this thread can still ask me things."
)


@dataclass
class _Scope:
    thread_id: int | None
    user_id: str | None
    calls: list[ModelCall] = field(default_factory=list)


_scope: ContextVar[_Scope | None] = ContextVar("threadkeeper_usage_scope", default=None)


class UsageRecorder:
    """Collects model calls per turn and records them; see the module docstring."""

    def __init__(self, usage_log: UsageLog | None, *, daily_cap: int | None = None) -> None:
        self._log = usage_log
        self._daily_cap = daily_cap
        self._writes: set[asyncio.Task[None]] = set()

    def begin(self, *, thread_id: int, user_id: str | None) -> None:
        """Attribute the model calls of this task, from now until :meth:`settle`, to a thread and a person."""
        _scope.set(_Scope(thread_id=thread_id, user_id=user_id))

    def observe(self, call: ModelCall) -> None:
        """The LLM client's observer: keep a successful call for the current scope (or unattributed)."""
        if call.failure is not None or self._log is None:
            return
        scope = _scope.get()
        if scope is None:
            self._spawn(_Scope(thread_id=None, user_id=None, calls=[call]))
        else:
            scope.calls.append(call)

    def settle(self) -> None:
        """Close the current scope; its calls are priced and written in the background."""
        scope = _scope.get()
        _scope.set(None)
        if scope is not None and scope.calls:
            self._spawn(scope)

    async def refuse_over_cap(self, *, outboxes: Mapping[str, ThreadOutbox], thread: ThreadKey, user_id: str) -> bool:
        """True (and a polite note posted in ``thread``) when ``user_id`` has spent today's USER_DAILY_TOKENS."""
        if self._daily_cap is None or self._log is None:
            return False
        day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        if await self._log.tokens_since(user_id=user_id, since=day) < self._daily_cap:
            return False
        log.info("%s reached USER_DAILY_TOKENS=%d; not answering in %s", user_id, self._daily_cap, thread)
        try:
            await outboxes[thread.platform].post_notice(thread=thread, text=CAP_NOTE.format(cap=self._daily_cap))
        except Exception:
            log.exception("could not post the daily limit note in %s", thread)
        return True

    async def close(self) -> None:
        """Finish the writes still running (before the database closes)."""
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    def _spawn(self, scope: _Scope) -> None:
        task = asyncio.ensure_future(self._write(scope))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, scope: _Scope) -> None:
        assert self._log is not None
        now = datetime.now(UTC)
        try:
            priced = await price_calls(scope.calls)
            await self._log.record(
                [
                    UsageRow(
                        thread_id=scope.thread_id,
                        user_id=scope.user_id,
                        purpose="answer" if call.streamed else "summary",
                        model=call.model,
                        prompt_tokens=p.prompt_tokens,
                        completion_tokens=p.completion_tokens,
                        tokens_counted=p.tokens_counted,
                        cost_usd=p.cost_usd,
                        created_utc=now,
                    )
                    for call, p in zip(scope.calls, priced, strict=True)
                ]
            )
        except Exception:
            log.exception("could not record the usage of %d model call(s)", len(scope.calls))


def usage_table(totals: list[UsageTotal], *, by: Grouping) -> str:
    """``threadkeeper stats`` as a plain-text table, with a total line."""
    if not totals:
        return "No usage recorded yet."
    header = (by.value, "answers", "summaries", "tokens in", "tokens out", "cost USD")
    rows = [
        (
            escape_controls(t.key),  # holds a thread title or a person's name
            f"{t.answers:,}",
            f"{t.summaries:,}",
            f"{t.prompt_tokens:,}",
            f"{t.completion_tokens:,}",
            f"{t.cost_usd:.6f}" + ("*" if t.unpriced_calls else ""),
        )
        for t in totals
    ]
    rows.append(
        (
            "total",
            f"{sum(t.answers for t in totals):,}",
            f"{sum(t.summaries for t in totals):,}",
            f"{sum(t.prompt_tokens for t in totals):,}",
            f"{sum(t.completion_tokens for t in totals):,}",
            f"{sum(t.cost_usd for t in totals):.6f}" + ("*" if any(t.unpriced_calls for t in totals) else ""),
        )
    )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if any(t.unpriced_calls for t in totals):
        lines.append("* includes calls to a model litellm's cost map does not price; their cost is not in the sum")
    return "\n".join(lines)
