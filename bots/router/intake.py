"""Logging an incoming message, first and exactly once, before the router decides what it needs.

The write happens before the thread's lock is taken: writes are group-committed in arrival order, so a busy
thread's messages share one commit instead of queueing one commit each. A thread forgotten by another process
since this one cached it (``ThreadGone``) is started afresh and the message logged in the new thread. Whether a
thread is one the bot takes part in (a message there is logged at all) is asked here too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from bots.router.forgetting import ErasureFollower
from bots.router.thread_state import ThreadState, ThreadStates, attachment_json, key_columns
from bots.seam.messages import IncomingMessage, ThreadKey
from storage.protocols import ThreadLog
from storage.records import LoggedMessage, ThreadGone

log = logging.getLogger(__name__)

LATE_MENTION_GRACE_S = 1.0  # a mention is logged within milliseconds; Slack wants the ack within 3 s


class MessageIntake:
    """Writes each delivered message to the log and holds its attachments for the turn that answers it."""

    def __init__(
        self, *, log: ThreadLog, states: ThreadStates, follower: ErasureFollower, clock: Callable[[], datetime]
    ) -> None:
        self._log = log
        self._states = states
        self._follower = follower
        self._clock = clock

    async def record(self, message: IncomingMessage, *, read: bool = False) -> tuple[ThreadState, LoggedMessage, bool]:
        """The thread's state, the logged row, and whether this delivery created it (False: seen before).

        ``read``: the message wants no answer of its own (``ThreadLog.record_message``); its files are described by
        name to the next answer, never held for reading.
        """
        state = await self.state_of(message)
        state.pinned += 1  # not dropped while the write is under way and the lock not yet taken
        try:
            row, created = await self._write(state, message, read=read)
        except ThreadGone:
            log.info("%s was forgotten while the bot ran; starting it afresh", message.thread)
            state.pinned -= 1
            await self._follower.catch_up()
            self._states.drop(state)
            state = await self.state_of(message)
            state.pinned += 1
            row, created = await self._write(state, message, read=read)
        finally:
            state.pinned -= 1
        if created and not read:
            state.files.hold(row.id, message.attachments)  # read by the turn that answers it
        return state, row, created

    async def is_tracked(self, thread: ThreadKey, *, look_again: bool) -> bool:
        """True when the bot takes part in the thread (it has a log).

        ``look_again``: the mention that brings the bot into a thread can still be on its way into the log at
        another worker when a quick reply in that thread reaches this one (Slack spreads events over the
        connections), so an untracked thread is looked up once more after :data:`LATE_MENTION_GRACE_S` before the
        message is ignored. The caller's ack waits for the answer: a crash meanwhile means a redelivery, not a loss.
        """
        if await self._has_log(thread):
            return True
        if not look_again:
            return False
        await asyncio.sleep(LATE_MENTION_GRACE_S)
        return await self._has_log(thread)

    async def latest_logged_id(self, thread: ThreadKey, *, shared: bool) -> str | None:
        """The platform id of the last message logged in ``thread`` (adapters backfill what came after it).

        ``shared`` (several workers): others go on answering while this one's gateway was down, so the bot's latest
        reply may be newer than what people wrote meanwhile; the history is read after their last logged message.
        """
        thread_id = await self._log.find_thread(**key_columns(thread))
        if thread_id is None:
            return None
        return await self._log.latest_platform_id(thread_id=thread_id, role="user" if shared else None)

    async def _has_log(self, thread: ThreadKey) -> bool:
        return thread in self._states or await self._log.find_thread(**key_columns(thread)) is not None

    async def state_of(self, message: IncomingMessage) -> ThreadState:
        """The state of the message's thread, its row made on first sight (titled as the message says)."""
        source = message.message_id if message.title_from_text else None
        return await self._states.get(
            message.thread, title=message.thread_title, now=self._clock(), title_message_id=source
        )

    async def _write(self, state: ThreadState, message: IncomingMessage, *, read: bool) -> tuple[LoggedMessage, bool]:
        return await self._log.record_message(
            thread_id=state.thread_id,
            platform_message_id=message.message_id,
            author_id=message.author.id,
            author_name=message.author.display_name,
            role="user",
            content=message.text,
            sent_utc=message.sent_utc,
            attachments=[attachment_json(a) for a in message.attachments],
            now=self._clock(),
            read=read,
        )
