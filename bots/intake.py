"""Logging an incoming message, first and exactly once, before the router decides what it needs.

The write happens before the thread's lock is taken: writes are group-committed in arrival order, so a busy
thread's messages share one commit instead of queueing one commit each. A thread forgotten by another process
since this one cached it (``ThreadGone``) is started afresh and the message logged in the new thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from bots.forgetting import ErasureFollower
from bots.messages import IncomingMessage
from bots.thread_state import ThreadState, ThreadStates, attachment_json
from storage.protocols import ThreadLog
from storage.records import LoggedMessage, ThreadGone

log = logging.getLogger(__name__)


class MessageIntake:
    """Writes each delivered message to the log and holds its attachments for the turn that answers it."""

    def __init__(
        self, *, log: ThreadLog, states: ThreadStates, follower: ErasureFollower, clock: Callable[[], datetime]
    ) -> None:
        self._log = log
        self._states = states
        self._follower = follower
        self._clock = clock

    async def record(self, message: IncomingMessage) -> tuple[ThreadState, LoggedMessage, bool]:
        """The thread's state, the logged row, and whether this delivery created it (False: seen before)."""
        state = await self._state(message)
        state.pinned += 1  # not dropped while the write is under way and the lock not yet taken
        try:
            row, created = await self._write(state, message)
        except ThreadGone:
            log.info("%s was forgotten while the bot ran; starting it afresh", message.thread)
            state.pinned -= 1
            await self._follower.catch_up()
            self._states.drop(state)
            state = await self._state(message)
            state.pinned += 1
            row, created = await self._write(state, message)
        finally:
            state.pinned -= 1
        if created:
            state.files.hold(row.id, message.attachments)  # read by the turn that answers it
        return state, row, created

    async def _state(self, message: IncomingMessage) -> ThreadState:
        return await self._states.get(message.thread, title=message.thread_title, now=self._clock())

    async def _write(self, state: ThreadState, message: IncomingMessage) -> tuple[LoggedMessage, bool]:
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
        )
