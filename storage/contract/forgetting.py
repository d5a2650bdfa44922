"""The contract of forgetting: deletions, edits, thread and person erasure, retention, and their journal.

A module of its own because forgetting reaches into every other store (messages, titles, summaries, tool
results) and its promises are the ones people rely on when they delete something; ``storage/erasure.py`` keeps
them on both backends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from storage.records import Erasure, MessageChange, UserErasure


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

    async def titles_owed(self) -> list[Erasure]:
        """Journal rows whose title was forgotten (``Erasure.title_forgotten``: by a deletion, an edit, ``forget
        --user`` or retention) and whose rename nobody has claimed yet, oldest first."""
        ...

    async def claim_title(self, *, erasure_id: int, by: str) -> bool:
        """Take the rename a journal row owes for ``by``; False when another took it first (or none is owed).

        One conditional UPDATE: of several workers following the journal, exactly one renames the thread."""
        ...

    async def prune_journal(self, *, before: datetime, owed_before: datetime | None = None) -> int:
        """Drop journal rows older than ``before``: running routers have long applied them. A row whose title
        rename is still owed (no router of its platform has run since) stays until ``owed_before``."""
        ...
