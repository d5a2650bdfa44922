"""UsageRecorder: tokens and cost of every answer and summary, into SQLite, after the reply is posted.

The LLM client calls :meth:`UsageRecorder.observe` when a call finishes; that only appends the call to the
current *scope*, a context variable the router opens with :meth:`begin` (which thread, whose message) for a
turn or a catch-up. :meth:`settle` closes the scope once the reply is posted (or has failed) and hands its
calls to a background task that counts tokens the provider did not report, prices them from litellm's local
cost map on a worker thread, and writes them in one insert. Nothing of this runs before the first token.

USER_DAILY_TOKENS caps the tokens spent for one person per UTC day. What a person has spent is what the usage
log holds for today plus what this process has spent for them and not written yet (calls of turns under way, in
any thread, and writes in flight), so parallel threads and the steps of a tool turn count at once. The cap is
checked for the author of every waiting message before a turn (:meth:`set_aside_capped`): a capped person's
messages are set aside with a polite note (once per message) and wait, unanswered, while the others' are
answered; someone else writing after them does not get them answered. It is checked again before every further
model step of a tool turn (:meth:`over_cap`), which then stops with a short note. A call under way always
finishes, so a person can pass the cap by at most one model call per thread they write in at the same moment.
Calls are attributed to the author of the newest message a turn answers (a catch-up to whoever clicked).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime

from agent.llm import ModelCall, price_calls
from bots.operator.log_escape import escape_controls
from bots.seam.messages import ThreadKey
from bots.seam.ports import ThreadOutbox
from storage.protocols import UsageLog
from storage.records import Grouping, LoggedMessage, UsageRow, UsageTotal

log = logging.getLogger(__name__)

CAP_NOTE = (
    "You've reached today's limit of {cap:,} tokens with me, so I'll pause answering you until midnight UTC. "
    "Others in this thread can still ask me things."
)
STEP_CAP_NOTE = "(I stopped here: you've reached today's limit of {cap:,} tokens with me.)"


@dataclass
class _Scope:
    thread_id: int | None
    user_id: str | None
    calls: list[ModelCall] = field(default_factory=list)
    unsettled: int = 0  # tokens of these calls, counted against the user's cap until they are written


def _rough_tokens(call: ModelCall) -> int:
    """The call's tokens as reported, else a quick estimate (4 characters a token); the log counts exactly later."""
    reported = call.usage.prompt_tokens + call.usage.completion_tokens
    if reported:
        return reported
    chars = sum(len(str(m.get("content") or "")) for m in call.request) + len(call.reply)
    return chars // 4 + 1


_scope: ContextVar[_Scope | None] = ContextVar("threadkeeper_usage_scope", default=None)


class UsageRecorder:
    """Collects model calls per turn and records them; see the module docstring."""

    def __init__(self, usage_log: UsageLog | None, *, daily_cap: int | None = None) -> None:
        self._log = usage_log
        self._daily_cap = daily_cap
        self._writes: set[asyncio.Task[None]] = set()
        self._unsettled: Counter[str] = Counter()  # per person: tokens spent, not in the log yet
        self._noted: set[int] = set()  # messages set aside with a note (today)
        self._noted_day: datetime | None = None

    @property
    def daily_cap(self) -> int | None:
        """USER_DAILY_TOKENS, or None when nobody is capped (or usage is not logged)."""
        return self._daily_cap if self._log is not None else None

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
            return
        scope.calls.append(call)
        if scope.user_id is not None:
            tokens = _rough_tokens(call)
            scope.unsettled += tokens
            self._unsettled[scope.user_id] += tokens

    def settle(self) -> None:
        """Close the current scope; its calls are priced and written in the background."""
        scope = _scope.get()
        _scope.set(None)
        if scope is not None and scope.calls:
            self._spawn(scope)

    async def over_cap(self, *, user_id: str) -> bool:
        """True when ``user_id`` has spent today's USER_DAILY_TOKENS (the log's count and what is not in it yet)."""
        if self._daily_cap is None or self._log is None:
            return False
        spent = await self._log.tokens_since(user_id=user_id, since=_today()) + self._unsettled[user_id]
        return spent >= self._daily_cap

    def step_cap_note(self) -> str:
        """What a tool turn stopped by the cap ends with."""
        return STEP_CAP_NOTE.format(cap=self._daily_cap or 0)

    async def set_aside_capped(
        self, waiting: list[LoggedMessage], *, outboxes: Mapping[str, ThreadOutbox], thread: ThreadKey
    ) -> list[LoggedMessage]:
        """The waiting messages a turn may answer: those whose authors are within today's cap.

        The others stay waiting; each gets the polite note once (per process and day), in ``thread``.
        """
        if self._daily_cap is None or self._log is None:
            return waiting
        capped = {a for a in dict.fromkeys(m.author_id for m in waiting) if await self.over_cap(user_id=a)}
        if not capped:
            return waiting
        if self._noted_day != _today():
            self._noted, self._noted_day = set(), _today()
        new = [m for m in waiting if m.author_id in capped and m.id not in self._noted]
        self._noted.update(m.id for m in new)
        if new:
            log.info("%d message(s) set aside in %s: USER_DAILY_TOKENS=%d reached", len(new), thread, self._daily_cap)
            try:
                await outboxes[thread.platform].post_notice(thread=thread, text=CAP_NOTE.format(cap=self._daily_cap))
            except Exception:
                log.exception("could not post the daily limit note in %s", thread)
        return [m for m in waiting if m.author_id not in capped]

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
        finally:
            if scope.user_id is not None and scope.unsettled:
                self._unsettled[scope.user_id] -= scope.unsettled
                if self._unsettled[scope.user_id] <= 0:
                    del self._unsettled[scope.user_id]


def _today() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


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
