"""The storage contract: one small Protocol per store, implemented by every backend.

The router, the flows and the CLI type their stores with these names; the composition root gets the concrete
objects from :func:`storage.backends.open_storage`. Each store is one class for both backends (``storage/log.py``,
``sessions.py``, ``erasure.py``, ``trail.py``, ``usage.py``, ``feedback.py``, ``thread_settings.py``, over
``storage/sql.py``); search and the leases are each backend's own (``storage/sqlite/``, ``storage/postgres/``).
mypy checks them against these, and one test suite (tests/storage_contract/) runs unchanged on SQLite and
Postgres.

Every method is keyword-only and returns the dataclasses of ``storage/records.py``, never a driver's row. Adding
a store: its records in records.py, its Protocol here, its class (statements in the neutral SQL of sql.py), its
tables in the one migration list (storage/revisions.py), a field in ``Storage`` (storage/backends.py), and its
contract tests in tests/storage_contract/. A table missing on one side fails test_postgres_foundation (both
schemas must have the same tables and columns), and ``migrate-db`` copies any new table without a change.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from storage.leases import Fence
from storage.records import (
    ApprovalRecord,
    CallEnd,
    CardRecord,
    Erasure,
    FeedbackEntry,
    Grouping,
    JournalStep,
    LoggedMessage,
    MessageChange,
    NewMessage,
    OpenJoin,
    Rating,
    SearchHit,
    SlackInstallation,
    StoredSummary,
    ThreadRecord,
    TrailEntry,
    UsageRow,
    UsageTotal,
    UserErasure,
)


class ThreadLog(Protocol):
    """Threads and their messages, each message logged exactly once."""

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
        """The thread's row id, creating the row on first sight.

        ``title_message_id``: the platform id of the message ``title`` was made from, if it was; the title then
        follows that message (blanked when it is deleted, edited or forgotten).
        """
        ...

    async def find_thread(self, *, platform: str, workspace: str, channel: str, thread: str) -> int | None: ...

    async def find_threads(self, *, name: str) -> list[ThreadRecord]:
        """Threads whose id or title is ``name`` (the CLI's way of naming a thread)."""
        ...

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
        """Log a message once; return its row and whether this call created it (ThreadGone if the thread went).

        ``read``: a user message that wants no answer of its own (history read on joining a thread, a side
        conversation the reply mode leaves unanswered): logged as answered, context for the next answer."""
        ...

    async def speakers(self, *, thread_id: int, limit: int) -> list[str]:
        """Up to ``limit`` distinct authors of the thread's user messages (the ``auto`` reply mode counts them)."""
        ...

    async def latest_platform_id(self, *, thread_id: int, role: str | None = None) -> str | None:
        """The id the platform gave the thread's most recently logged message (provisional ids skipped); of a
        ``role`` only when given (several workers: the bot's replies go on while a Discord gateway is down)."""
        ...

    async def has_messages_before(self, *, thread_id: int, message_id: int) -> bool:
        """True when the thread was logged before ``message_id`` arrived: the orphan test."""
        ...

    async def set_attachments(
        self, *, thread_id: int, message_id: int, attachments: list[dict[str, Any]], transcript: str | None = None
    ) -> None:
        """Replace a message's attachment metadata once its files were read, with the transcript of its audio
        when it had some (a deleted message stays blank)."""
        ...

    async def set_platform_id(self, *, thread_id: int, old: str, new: str, fence: Fence | None = None) -> None:
        """Give a reply logged before it was posted the id the platform gave it (``fence``: as for
        :meth:`record_reply`)."""
        ...

    async def threads_with_waiting(self, *, platform: str) -> list[ThreadRecord]:
        """Threads of ``platform`` holding user messages that no posted reply has covered."""
        ...

    async def waiting(self, *, thread_id: int) -> list[LoggedMessage]:
        """User messages that no posted reply has covered yet, oldest first."""
        ...

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
        """Log a posted reply and mark what it answered (and their deliveries handled) in one transaction.

        With several workers, ``fence`` proves the writer still owns the thread (checked in that transaction;
        :class:`storage.leases.LeaseLost` when it does not)."""
        ...

    async def replace_reply(
        self, *, thread_id: int, reply_id: int, answered_ids: list[int], now: datetime, fence: Fence | None = None
    ) -> bool:
        """Mark the answer replaced and what it answered waiting again, in one transaction (a retry); False when
        the answer is gone or was replaced already (``fence``: as for :meth:`record_reply`)."""
        ...

    async def transcript(
        self, *, thread_id: int, after_id: int = 0, through_id: int | None = None
    ) -> list[LoggedMessage]:
        """Visible, not replaced, already answered or assistant messages in (``after_id``, ``through_id``]."""
        ...

    async def visible(self, *, thread_id: int, ids: list[int]) -> list[LoggedMessage]:
        """The messages among ``ids`` that are still there (not deleted), with their current text, oldest first."""
        ...

    async def all_messages(self, *, thread_id: int) -> list[LoggedMessage]: ...

    async def thread(self, *, thread_id: int) -> ThreadRecord | None: ...


class JoinStore(Protocol):
    """Threads being joined: their history still to be logged before the mention (``storage/joins.py``)."""

    async def begin(
        self,
        *,
        platform: str,
        workspace: str,
        channel: str,
        thread: str,
        title: str | None,
        title_message_id: str | None,
        before_message_id: str,
        room: int,
        now: datetime,
    ) -> int | None:
        """The new thread's id with its join open (``room`` ids reserved); None when the thread existed."""

    async def open_join(self, *, thread_id: int) -> OpenJoin | None: ...

    async def finish(
        self, *, join: OpenJoin, history: list[NewMessage], fence: Fence | None = None
    ) -> list[LoggedMessage]:
        """Log ``history`` before the mention and close the join, in one transaction; the rows logged."""


class SessionStore(Protocol):
    """Which summary seeded which session, so the next catch-up can be incremental."""

    async def record(
        self,
        *,
        thread_id: int,
        origin: str,
        model: str,
        started_utc: datetime,
        summary: str | None = None,
        summary_through_message_id: int | None = None,
    ) -> int: ...

    async def record_with_summary(
        self,
        *,
        thread_id: int,
        model: str,
        started_utc: datetime,
        summary: str,
        summary_through_message_id: int,
        erasures_seen: int,
    ) -> int | None:
        """Record a caught-up session unless the thread forgot something after ``erasures_seen``; None if so."""
        ...

    async def replace_summary(
        self, *, session_id: int, thread_id: int, summary: str | None, through_message_id: int, erasures_seen: int
    ) -> bool:
        """Store a live session's rebuilt seed summary, under the same condition as ``record_with_summary``."""
        ...

    async def latest_summary(self, *, thread_id: int) -> StoredSummary | None:
        """The most recent catch-up summary of the thread whose covered message still exists."""
        ...


class CardStore(Protocol):
    """ "Where were we?" cards; the first click wins in the database."""

    async def open_card(self, *, thread_id: int, now: datetime, fence: Fence | None = None) -> tuple[CardRecord, bool]:
        """The thread's open card, creating a pending one if there is none; True when created now (``fence``: as
        in :meth:`ThreadLog.record_reply`)."""
        ...

    async def open_card_for(self, *, thread_id: int) -> CardRecord | None: ...

    async def get(self, *, card_id: int) -> CardRecord | None: ...

    async def set_message_id(self, *, card_id: int, card_message_id: str) -> None: ...

    async def claim(self, *, card_id: int, state: str, by_id: str, by_name: str, now: datetime) -> bool:
        """Move a pending card to ``state`` for this user; False when someone else got there first."""
        ...

    async def finish(self, *, card_id: int, state: str, now: datetime, fence: Fence | None = None) -> None: ...

    async def discard(self, *, card_id: int) -> None:
        """Forget a card that could not be posted (its id is never given to another card)."""
        ...

    async def reopen(self, *, card_id: int) -> None:
        """Back to pending (the catch-up failed): the buttons work again."""
        ...

    async def reopen_interrupted(self) -> list[CardRecord]:
        """Cards left 'catching_up' by a process that died mid-summary become clickable again; returns them."""
        ...


class DeliveredEvents(Protocol):
    """Platform delivery ids (Slack event_id) and whether the work they asked for was done."""

    async def record(self, *, platform: str, event_key: str, message_id: int, now: datetime) -> bool:
        """Remember a delivery; True when it was handled already (a redelivery to drop)."""
        ...

    async def prune(self, *, received_before: datetime) -> int:
        """Forget deliveries received before ``received_before`` whose work is done; return how many."""
        ...

    async def mark_handled(self, *, message_ids: list[int], now: datetime) -> None: ...


class ErasureStore(Protocol):
    """Deletions, edits, thread and person erasure, retention, and the journal live sessions follow."""

    async def delete_message(
        self, *, thread_id: int, platform_message_id: str, deleted_utc: datetime
    ) -> MessageChange | None:
        """Blank a message deleted on the platform; return what changed (None when unknown or already deleted).

        A thread title made from the message is blanked with it (``MessageChange.title_forgotten``)."""
        ...

    async def edit_message(
        self, *, thread_id: int, platform_message_id: str, content: str, edited_utc: datetime
    ) -> MessageChange | None:
        """Store a message's new text; return what changed (None when unknown, deleted or unchanged).

        A thread title made from the old text is blanked (``MessageChange.title_forgotten``)."""
        ...

    async def forget_thread(self, *, thread_id: int, now: datetime, keep_tracking: bool = False) -> int:
        """Purge a thread (messages, sessions, cards, deliveries cascade); return how many messages went.

        ``keep_tracking``: the thread gets a bare row in the same transaction (its platform key under a new id, no
        title, nothing else), so the bot still takes part in it and its next message starts it afresh (the
        in-thread forget). Without it the thread is gone entirely (the operator's ``threadkeeper forget``).
        """
        ...

    async def forget_user(self, *, platform: str, user_id: str, now: datetime) -> list[UserErasure]:
        """Erase one person's messages (text, attachments, name and id) in every thread of ``platform``."""
        ...

    async def purge_older_than(self, *, cutoff: datetime, now: datetime) -> int:
        """Delete messages sent before ``cutoff`` (never one still waiting for an answer); return the count."""
        ...

    async def latest_id(self, *, thread_id: int | None = None) -> int:
        """The newest journal id (of one thread when given), 0 when there is none."""
        ...

    async def since(self, *, after_id: int) -> list[Erasure]:
        """Journal rows newer than ``after_id``, oldest first."""
        ...

    async def prune_journal(self, *, before: datetime) -> int:
        """Drop journal rows older than ``before``: running routers have long applied them."""
        ...


class ThreadSearch(Protocol):
    async def search(self, *, thread_id: int, query: str, limit: int) -> list[SearchHit]:
        """The ``limit`` messages of the thread that match ``query`` best, best first; never another thread's."""
        ...


class ToolTrail(Protocol):
    async def record(
        self,
        *,
        thread_id: int,
        after_message_id: int,
        call_id: str,
        tool: str,
        arguments: dict[str, object],
        result_excerpt: str,
        is_error: bool,
        duration_ms: int,
        approval: str,
        decided_by: str | None,
        cites: tuple[int, ...],
        now: datetime,
    ) -> None: ...

    async def for_thread(self, *, thread_id: int, after_id: int = 0, through_id: int | None = None) -> list[TrailEntry]:
        """Trail entries placed after a message in (``after_id``, ``through_id``], in order."""
        ...


class TurnJournal(Protocol):
    """A tool turn's steps and each call's state, as they happen (storage/journal.py says why)."""

    async def open_step(
        self,
        *,
        thread_id: int,
        after_message_id: int,
        text: str,
        calls: Sequence[tuple[str, str, str]],
        now: datetime,
        running: str | None = None,
        ended: CallEnd | None = None,
    ) -> int:
        """Record a step and its ``(call_id, tool, arguments_json)`` calls as requested (the one ``running``
        names as running, the one ``ended`` names as ended), in one transaction; returns the step's id."""
        ...

    async def set_state(self, *, step_id: int, call_id: str, state: str) -> None:
        """Move a call to ``allowed`` or ``running``, committed when this returns."""
        ...

    async def set_waiting(self, *, step_id: int, call_id: str, approval_id: int) -> None:
        """The call waits on approval ``approval_id`` (the card outlives the process)."""
        ...

    async def finish(
        self,
        *,
        step_id: int,
        call_id: str,
        state: str,
        result: str,
        is_error: bool,
        duration_ms: int,
        approval: str,
        decided_by: str | None,
        cites: tuple[int, ...],
    ) -> None:
        """End a call (``done``, ``failed``, ``denied``, ``expired``) with its result as the model saw it."""
        ...

    async def open_turn(self, *, thread_id: int) -> list[JournalStep]:
        """The steps of the thread's open turn, oldest first, each with its calls in order; empty when none."""
        ...

    async def close_turn(self, *, thread_id: int, now: datetime) -> int:
        """The open turn ended (answered or dropped); its rows stay in the log. Returns the steps closed."""
        ...


class ApprovalStore(Protocol):
    async def open(self, *, thread_id: int, tool: str, arguments_preview: str, now: datetime) -> int: ...

    async def set_message_id(self, *, approval_id: int, card_message_id: str) -> None: ...

    async def decide(
        self,
        *,
        approval_id: int,
        state: str,
        by_id: str | None,
        by_name: str | None,
        now: datetime,
        within_s: float | None = None,
    ) -> bool:
        """Move a pending approval to ``state``; False when it was decided (or expired) already.

        ``within_s``: only if it was asked for less than that many seconds ago by the database's clock (the
        timeout, decided in the same statement; ``ApprovalRecord.age_s`` is the same clock's reading)."""
        ...

    async def get(self, *, approval_id: int) -> ApprovalRecord | None: ...

    async def expire_pending(self, *, now: datetime) -> int:
        """An earlier run's waiting calls died with it: their cards are stale. Returns how many."""
        ...


class UsageLog(Protocol):
    async def record(self, rows: list[UsageRow]) -> None:
        """Write a turn's calls in one transaction."""
        ...

    async def tokens_since(self, *, user_id: str, since: datetime) -> int:
        """Tokens in and out of the calls made for ``user_id`` since ``since``."""
        ...

    async def totals(self, *, by: Grouping, since: datetime | None = None) -> list[UsageTotal]:
        """Usage grouped by thread, user or UTC day, since ``since`` (all of it when None)."""
        ...


class FeedbackStore(Protocol):
    """👍 / 👎 on answers: one row per answer and person, a second click replacing the first."""

    async def record(
        self,
        *,
        platform: str,
        workspace: str,
        channel: str,
        thread: str,
        answer_id: str,
        user_id: str,
        user_name: str,
        rating: Rating,
        now: datetime,
    ) -> bool:
        """Record (or replace) ``user_id``'s feedback on the answer; False when no logged answer has that id."""
        ...

    async def for_thread(self, *, thread_id: int) -> list[FeedbackEntry]:
        """The thread's feedback, in the order of its answers, then of when it was given."""
        ...


class ThreadSettings(Protocol):
    """What people chose for one thread from inside it (its model, its reply mode); gone with the thread."""

    async def model(self, *, thread_id: int) -> str | None: ...

    async def set_model(self, *, thread_id: int, model: str, changed_by_id: str, now: datetime) -> None: ...

    async def reply_mode(self, *, thread_id: int) -> str | None: ...

    async def set_reply_mode(self, *, thread_id: int, mode: str, changed_by_id: str, now: datetime) -> None: ...


class SlackInstallations(Protocol):
    """Slack installations by (enterprise, team), tokens already encrypted; a delete scrubs the old bytes."""

    async def save(
        self,
        *,
        enterprise_id: str,
        team_id: str,
        team_name: str | None,
        bot_user_id: str | None,
        bot_scopes: str,
        details_json: str,
        tokens_ciphertext: str,
        now: datetime,
    ) -> None: ...

    async def find(self, *, enterprise_id: str, team_id: str) -> SlackInstallation | None: ...

    async def find_team(self, *, team_id: str) -> SlackInstallation | None: ...

    async def all(self) -> list[SlackInstallation]: ...

    async def delete(self, *, enterprise_id: str, team_id: str) -> bool: ...


class OAuthStates(Protocol):
    """The OAuth ``state`` values handed out by the install page: each consumed at most once, before it expires."""

    async def issue(self, *, state: str, expires: datetime) -> None: ...

    async def consume(self, *, state: str, now: datetime) -> bool: ...


class DatabaseProbe(Protocol):
    """What /readyz and the gauges ask the running bot's own database."""

    async def writable(self) -> bool:
        """True when a write transaction can start now (nothing is written)."""
        ...

    async def waiting_threads(self) -> int:
        """Threads holding user messages that no posted reply has covered yet."""
        ...
