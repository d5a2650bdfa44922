"""How forgetting reaches live sessions: the log as a session's source, and the erasure journal follower.

Every deletion, edit, ``forget`` and retention purge writes a row to the erasure journal in the same
transaction that changes the log (``storage/erasure.py``). A router follows the journal, its own rows and
those of other processes (``threadkeeper forget --user`` run beside the bot), and hands each row to its live
session, which drops the text and any summary that saw it. A session that must rebuild a summary reads the log
through :class:`LogSource`, and stores the rebuilt seed only if nothing was forgotten meanwhile.
:class:`Forgetting` is the router's flow for platform edits and deletions: the journal row is written by
storage, then followed here into this process's memory. A deleted or edited message is found by its platform id
in every thread of its channel that logged it, not only the thread the event names: a Discord channel message is
logged in the thread it started and in each thread a reply continuing it started (its reply chain, read on
joining: ``bots/router/joining.py``), and Discord names only the channel when it is deleted.

A thread title made from the deleted or edited message is blanked by storage in the same transaction, and the
journal row says so (``Erasure.title_forgotten``), whichever process forgot it (a platform event here,
``forget --user``, retention): following the row renames the title the platform shows (Slack's agent session, a
Discord thread the bot named after the mention) to ``NEUTRAL_TITLE``, so the deleted text is not left on screen
(``bots/router/forgotten_titles.py``, once across workers). The outbox only translates; storage's answer decides.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from agent.summarize import trail_line, transcript_line
from agent.tools import call_line
from bots.router.forgotten_titles import NEUTRAL_TITLE as NEUTRAL_TITLE
from bots.router.forgotten_titles import ForgottenTitles
from bots.router.thread_state import ThreadStates, prompt_text
from bots.seam.messages import MessageDeletion, MessageEdit, ThreadKey
from bots.workers.periodic import Periodic
from storage.protocols import ErasureStore, SessionStore, ThreadLog, ToolTrail
from storage.records import (
    KIND_DELETED,
    KIND_EDITED,
    KIND_THREAD,
    Erasure,
    LoggedMessage,
    MessageChange,
    ThreadRecord,
    TrailEntry,
    interleave,
)

log = logging.getLogger(__name__)

FOLLOW_INTERVAL_S = 2.0


def transcript_lines(messages: list[LoggedMessage], trail: Sequence[TrailEntry] = ()) -> list[str]:
    """Log rows, with the tool calls of the trail where they happened, as the lines a summary is written from."""
    return [
        _call(item)
        if isinstance(item, TrailEntry)
        else transcript_line(author=item.author_name, role=item.role, text=prompt_text(item))
        for item in interleave(messages, list(trail))
    ]


def _call(entry: TrailEntry) -> str:
    text = call_line(
        name=entry.tool, raw_arguments=entry.arguments_json, result=entry.result_excerpt, is_error=entry.is_error
    )
    return trail_line(tool=entry.tool, text=text, is_error=entry.is_error)


async def thread_transcript(
    *, log: ThreadLog, trail: ToolTrail, thread_id: int, after_id: int = 0, through_id: int | None = None
) -> tuple[list[LoggedMessage], list[str]]:
    """The transcript of (``after_id``, ``through_id``]: its visible messages, and its lines with the trail."""
    messages = await log.transcript(thread_id=thread_id, after_id=after_id, through_id=through_id)
    last = through_id if through_id is not None else (messages[-1].id if messages else after_id)
    entries = await trail.for_thread(thread_id=thread_id, after_id=after_id, through_id=last)
    return messages, transcript_lines(messages, entries)


class LogSource:
    """One thread's log, as an ``agent.rebuild.SessionSource``."""

    def __init__(
        self,
        *,
        log: ThreadLog,
        trail: ToolTrail,
        sessions: SessionStore,
        erasures: ErasureStore,
        thread_id: int,
        session_id: int,
    ) -> None:
        self._log = log
        self._trail = trail
        self._sessions = sessions
        self._erasures = erasures
        self._thread_id = thread_id
        self._session_id = session_id
        self._seen = 0

    async def lines_through(self, message_id: int) -> list[str]:
        self._seen = await self._erasures.latest_id(thread_id=self._thread_id)
        _, lines = await thread_transcript(
            log=self._log, trail=self._trail, thread_id=self._thread_id, through_id=message_id
        )
        return lines

    async def lines_of(self, message_ids: list[int]) -> list[str]:
        return transcript_lines(await self._log.visible(thread_id=self._thread_id, ids=message_ids))

    async def seed_rebuilt(self, *, summary: str | None, through: int) -> bool:
        return await self._sessions.replace_summary(
            session_id=self._session_id,
            thread_id=self._thread_id,
            summary=summary,
            through_message_id=through,
            erasures_seen=self._seen,
        )


class ErasureFollower:
    """Applies new journal rows, in order, exactly once per process; polls for other processes' rows."""

    def __init__(self, *, erasures: ErasureStore, seen: int, apply: Callable[[Erasure], Awaitable[None]]) -> None:
        self._erasures = erasures
        self._seen = seen
        self._apply = apply
        self._lock = asyncio.Lock()
        self._poller = Periodic(
            name="reading the erasure journal", interval_s=lambda: FOLLOW_INTERVAL_S, work=self.catch_up
        )

    async def catch_up(self) -> None:
        """Apply every journal row written since the last one applied."""
        async with self._lock:
            for erasure in await self._erasures.since(after_id=self._seen):
                self._seen = erasure.id
                try:
                    await self._apply(erasure)
                except Exception:
                    log.exception("could not apply erasure %s to the live sessions", erasure.id)

    def start(self) -> None:
        """Poll for rows of other processes every FOLLOW_INTERVAL_S seconds (once; idempotent)."""
        self._poller.start()

    async def stop(self) -> None:
        await self._poller.stop()


class Forgetting:
    """Platform edits and deletions into the log, and every journal row into this process's live sessions."""

    def __init__(
        self,
        *,
        log: ThreadLog,
        erasures: ErasureStore,
        states: ThreadStates,
        seen: int,
        titles: ForgottenTitles,
    ) -> None:
        self._log = log
        self._erasures = erasures
        self._states = states
        self.titles = titles
        self.follower = ErasureFollower(erasures=erasures, seen=seen, apply=self._apply)

    async def handle_edit(self, edit: MessageEdit) -> None:
        """Store the new text; the live session and any summary that saw the old one follow."""
        for thread in await self._threads_holding(edit.thread, edit.message_id):
            change = await self._erasures.edit_message(
                thread_id=thread.id, platform_message_id=edit.message_id, content=edit.text, edited_utc=edit.edited_utc
            )
            await self._followed(change)

    async def handle_deletion(self, deletion: MessageDeletion) -> None:
        """Forget the message's text everywhere: log, stored summaries, live session, disk."""
        for thread in await self._threads_holding(deletion.thread, deletion.message_id):
            change = await self._erasures.delete_message(
                thread_id=thread.id, platform_message_id=deletion.message_id, deleted_utc=deletion.deleted_utc
            )
            await self._followed(change)

    async def _threads_holding(self, where: ThreadKey, message_id: str) -> list[ThreadRecord]:
        """Every thread of ``where``'s channel that logged the message: a platform names a message's channel, and a
        Discord channel message may be logged in several threads (one it started, the reply chains through it)."""
        return await self._log.threads_holding(
            platform=where.platform, workspace=where.workspace, channel=where.channel, platform_message_id=message_id
        )

    async def _followed(self, change: MessageChange | None) -> None:
        """After a change: live sessions drop the old text, and a title made from it leaves the platform too (its
        journal row is followed like any other process's, so the rename has one place: ``_apply``)."""
        if change is not None:
            await self.follower.catch_up()

    async def _apply(self, erasure: Erasure) -> None:
        """One journal row reaches this process: its memory first, then a title made from the text is renamed on
        the platform (a row whose memory part failed stays owed its rename: ``ForgottenTitles.ready``)."""
        await self._forget_in_memory(erasure)
        await self.titles.follow(erasure)

    async def _forget_in_memory(self, erasure: Erasure) -> None:
        """A thread dropped, or a message out of its session."""
        state = self._states.by_thread_id(erasure.thread_id)
        if state is None:
            return
        if erasure.kind == KIND_THREAD:
            log.info("%s was forgotten; its live session and state are dropped", state.key)
            if state.worker is not None:
                state.worker.cancel()
            self._states.drop(state)
            return
        state.catch_up.interrupt()  # a catch-up summary being written may hold the text: stop it, write it anew
        if erasure.kind == KIND_DELETED and erasure.message_id is not None:
            state.files.release([erasure.message_id])  # a deleted message's files leave memory too
        if state.session is None or erasure.message_id is None:
            return
        new_text = None
        if erasure.kind == KIND_EDITED:
            rows = await self._log.visible(thread_id=state.thread_id, ids=[erasure.message_id])
            new_text = prompt_text(rows[0], state.files.read.get(erasure.message_id)) if rows else None
        state.session.forget(message_id=erasure.message_id, new_text=new_text)
