"""The contract of the thread log: threads, their messages logged exactly once, and the deliveries that bring them.

The log is the store everything else hangs on (the router's intake, the reply path, the orphan test, the CLI's
way of naming a thread), and its Protocol is the largest of the contract: it gets a module of its own, with the
joins that log a thread's history before the mention that brought the bot in. The
classes are ``storage/log.py`` (``ThreadLog``), ``storage/sessions.py`` (``DeliveredEvents``) and ``storage/joins.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from storage.leases import Fence
from storage.records import LoggedMessage, NewMessage, OpenJoin, ThreadRecord


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

    async def threads_holding(
        self, *, platform: str, workspace: str, channel: str, platform_message_id: str
    ) -> list[ThreadRecord]:
        """The threads of a channel that logged the platform's message ``platform_message_id``, oldest first."""
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


class DeliveredEvents(Protocol):
    """Platform delivery ids (Slack event_id) and whether the work they asked for was done."""

    async def record(self, *, platform: str, event_key: str, message_id: int, now: datetime) -> bool:
        """Remember a delivery; True when it was handled already (a redelivery to drop)."""
        ...

    async def prune(self, *, received_before: datetime) -> int:
        """Forget deliveries received before ``received_before`` whose work is done; return how many."""
        ...

    async def mark_handled(self, *, message_ids: list[int], now: datetime) -> None: ...


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
        replied_to: str | None = None,
    ) -> int | None:
        """The new thread's id with its join open (``room`` ids reserved); None when the thread existed."""

    async def open_join(self, *, thread_id: int) -> OpenJoin | None: ...

    async def finish(
        self, *, join: OpenJoin, history: list[NewMessage], fence: Fence | None = None
    ) -> list[LoggedMessage]:
        """Log ``history`` before the mention and close the join, in one transaction; the rows logged."""
