"""When the bot answers in a thread: every message, only when addressed, or as the conversation goes (the reply mode).

A thread's mode is chosen in it with the ``reply`` command and kept beside its model (``thread_settings``, so a
restart keeps it); ``REPLY_MODE`` is the default of threads nobody chose for:

- ``all``: every message is answered;
- ``mention``: only messages that mention the bot or reply to one of its messages;
- ``auto``: ``all`` while only one person has written in the thread; once a second person writes, only messages
  that mention the bot, reply to it, or are plainly addressed to it: its name at the start, or a question right
  after its answer by the person it answered.

The adapters say whether a message mentions the bot or replies to it (``IncomingMessage.mentions_bot`` /
``replies_to_bot``); this module decides. A message not answered is still logged, as read (no answer is owed,
and after a restart it posts no card), and a live session hears it: it is context for the next answer.
"""

from __future__ import annotations

import enum
import logging
import re
import time
from datetime import datetime

from bots.router.bounded import BoundedCache
from bots.router.thread_state import ThreadState
from bots.seam.messages import IncomingMessage
from storage.protocols import ThreadLog, ThreadSettings

log = logging.getLogger(__name__)

CROWD = 2  # people (besides the bot) from whom on ``auto`` answers only when addressed
MODE_TTL_S = 60.0  # a mode chosen at another worker is seen here within this (this worker's choices at once)
RECENT_CHOICES = 256  # choices made at this worker, held until every state has read them again


class ReplyMode(enum.StrEnum):
    ALL = "all"
    MENTION = "mention"
    AUTO = "auto"


def parse_reply_mode(text: str) -> ReplyMode | None:
    """``"Mention"`` -> MENTION; None for anything else."""
    try:
        return ReplyMode(text.strip().lower())
    except ValueError:
        return None


def starts_with_name(text: str, name: str) -> bool:
    """The text opens by naming the bot ("threadkeeper, what…", "@threadkeeper: …", "hey threadkeeper …" is not)."""
    words = name.strip()
    if not words:
        return False
    return re.match(rf"@?{re.escape(words)}\b", text.strip(), flags=re.IGNORECASE) is not None


class ReplyModes:
    """Each thread's reply mode, and whether a message in it is one the bot answers."""

    def __init__(
        self, *, log: ThreadLog, store: ThreadSettings | None, default: ReplyMode, assistant_name: str
    ) -> None:
        self._log = log
        self._store = store
        self.default = default
        self._name = assistant_name
        # Every message asks for its thread's mode, so it is held on the thread's state (bounded with the states)
        # and read again after MODE_TTL_S, not read per message (P2 logs thousands a second); a choice made here
        # is seen at once through this small cache of recent choices.
        self._chosen_here: BoundedCache[int, str] = BoundedCache(max_entries=RECENT_CHOICES, ttl_s=MODE_TTL_S)

    async def mode_for(self, thread_id: int) -> ReplyMode:
        """The thread's chosen mode, else the default (a stored value no longer known falls back too)."""
        return self._parsed(await self._read(thread_id))

    async def _mode_of(self, state: ThreadState) -> ReplyMode:
        """:meth:`mode_for`, held on ``state`` for :data:`MODE_TTL_S`."""
        now = time.monotonic()
        chosen_here = self._chosen_here.get(state.thread_id)
        if chosen_here is not None:
            state.reply_mode, state.reply_mode_read_s = chosen_here, now
        elif state.reply_mode_read_s is None or now - state.reply_mode_read_s > MODE_TTL_S:
            state.reply_mode, state.reply_mode_read_s = await self._read(state.thread_id), now
        return self._parsed(state.reply_mode)

    async def _read(self, thread_id: int) -> str:
        return (None if self._store is None else await self._store.reply_mode(thread_id=thread_id)) or ""

    def _parsed(self, chosen: str | None) -> ReplyMode:
        return (parse_reply_mode(chosen) if chosen else None) or self.default

    async def choose(self, *, thread_id: int, mode: ReplyMode, by_id: str, now: datetime) -> None:
        if self._store is None:
            raise RuntimeError("no thread settings store: reply modes cannot be kept")
        await self._store.set_reply_mode(thread_id=thread_id, mode=mode.value, changed_by_id=by_id, now=now)
        self._chosen_here.put(thread_id, mode.value)

    async def answers(self, state: ThreadState, message: IncomingMessage) -> bool:
        """Whether the bot answers ``message`` in ``state``'s thread (call before it is logged)."""
        followed_up, state.answered_author = state.answered_author == message.author.id, None
        if message.mentions_bot or message.replies_to_bot:
            return True
        mode = await self._mode_of(state)
        if mode is ReplyMode.ALL:
            return True
        if mode is ReplyMode.AUTO and len(await self._speakers(state, message)) < CROWD:
            return True
        if mode is ReplyMode.AUTO and (
            starts_with_name(message.text, self._name) or (followed_up and "?" in message.text)
        ):
            return True
        log.info("not answering message %s in %s (reply mode %s)", message.message_id, state.key, mode.value)
        return False

    async def _speakers(self, state: ThreadState, message: IncomingMessage) -> set[str]:
        """The people who wrote in the thread, this message's author included, as far as :data:`CROWD` (cached).

        The log is read once per thread state; after that every message passes here, so memory keeps count."""
        if not state.speakers_read and len(state.speakers) < CROWD:
            state.speakers.update(await self._log.speakers(thread_id=state.thread_id, limit=CROWD))
            state.speakers_read = True
        state.speakers.add(message.author.id)
        return state.speakers
