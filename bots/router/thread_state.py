"""What the router keeps per thread, and the small conversions between events, log rows and prompts.

Kept apart from ``threads.py`` so the router module reads as the rules it enforces.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from agent.session import AgentSession
from agent.summarize import Interruptible
from bots.files.attachments import HeldFiles, ReadFile, label, metadata
from bots.files.voice import said, transcript_of
from bots.operator.usage import UsageRecorder
from bots.seam.messages import Attachment, ThreadKey
from storage.protocols import (
    CardStore,
    DeliveredEvents,
    ErasureStore,
    FeedbackStore,
    JoinStore,
    SessionStore,
    ThreadLog,
    ToolTrail,
    TurnJournal,
)
from storage.records import CardRecord, LoggedMessage, ThreadRecord

log = logging.getLogger(__name__)


@dataclass(eq=False)
class ThreadState:
    """One thread as this process knows it: its lock, its live session (if any), and its answer worker.

    ``inflight`` holds the platform ids of messages queued or waiting on a card, so a redelivery while they
    wait does nothing; ``idle`` says the state can be dropped (evicted) without losing work.
    """

    key: ThreadKey
    thread_id: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session: AgentSession | None = None
    inflight: set[str] = field(default_factory=set)
    worker: asyncio.Task[None] | None = None
    wake: bool = False
    card_open: bool | None = None  # None: not known yet in this process; ask SQLite
    card_unshown: CardRecord | None = None  # read from SQLite without a message id: show_recorded_card's work
    answered_through: int = 0  # the highest log id a posted reply of this process has covered
    session_id: int | None = None  # the sessions row of the live session
    pinned: int = 0  # flows (a card being resolved) that need the state kept, however idle it looks
    forgotten: bool = False  # the thread was purged: whatever still runs for it must not write
    catch_up: Interruptible = field(default_factory=Interruptible)  # the catch-up summary being written
    files: HeldFiles = field(default_factory=HeldFiles)  # attachments between intake and a posted answer
    speakers: set[str] = field(default_factory=set)  # people who wrote here, as far as the reply mode needs (2)
    reply_mode: str | None = None  # the chosen reply mode as last read ('' for none), see reply_modes.py
    reply_mode_read_s: float | None = None  # when it was read (monotonic); None: not yet
    speakers_read: bool = False  # ``speakers`` was read from the log once; messages since are added as they come
    answered_author: str | None = None  # whom the bot's last answer answered, until anyone writes again

    @property
    def idle(self) -> bool:
        """Nothing runs for the thread: its live session may be evicted without losing work."""
        return not self.lock.locked() and self.worker is None and not self.inflight and not self.pinned

    @property
    def droppable(self) -> bool:
        """Nothing runs and nothing waits in memory alone: the whole state may go (SQLite has the rest)."""
        return not self.lock.locked() and self.worker is None and not self.pinned


@dataclass(frozen=True, slots=True)
class RouterStores:
    """The storage repositories the router works through (the composition root builds them)."""

    log: ThreadLog
    joins: JoinStore  # threads being joined: their history still to be logged (bots/router/joining.py)
    sessions: SessionStore
    cards: CardStore
    events: DeliveredEvents
    erasures: ErasureStore
    trail: ToolTrail
    usage: UsageRecorder = field(default_factory=lambda: UsageRecorder(None))
    feedback: FeedbackStore | None = None  # 👍 / 👎 on answers, where a platform offers them
    journal: TurnJournal | None = None  # tool turns as they happen; Start fresh drops an interrupted one


def key_of(record: ThreadRecord) -> ThreadKey:
    """The key a thread row was logged under (the inverse of :func:`key_columns`)."""
    return ThreadKey(record.platform, record.workspace, record.channel, record.thread)


async def thread_key(log_: ThreadLog, *, thread_id: int) -> ThreadKey | None:
    """The key of a thread row, or None when the thread is gone."""
    thread = await log_.thread(thread_id=thread_id)
    return None if thread is None else key_of(thread)


async def clicked_thread(log_: ThreadLog, *, thread_id: int, clicked_in: ThreadKey | None) -> ThreadKey | None:
    """The key of the thread a card (or approval) belongs to, or None when the thread is gone or the click came
    from another place: a button names its card by number only, so a click counts only in the card's thread.
    A click whose place the platform did not say (``clicked_in`` None) counts nowhere: it is refused, not
    taken as a click in whatever thread the number names."""
    if clicked_in is None:
        log.warning(
            "refusing a click on a button of thread %d: the platform did not say where it was pressed", thread_id
        )
        return None
    key = await thread_key(log_, thread_id=thread_id)
    if key is not None and not clicked_in.is_same_place(key):
        log.warning("refusing a click from %s on a card that belongs to %s", clicked_in, key)
        return None
    return key


def key_columns(key: ThreadKey) -> dict[str, str]:
    return {"platform": key.platform, "workspace": key.workspace, "channel": key.channel, "thread": key.thread}


def attachment_json(attachment: Attachment) -> dict[str, object]:
    """An attachment as intake logs it: metadata only, not read yet."""
    return metadata(attachment)


def prompt_text(message: LoggedMessage, read: list[ReadFile] | None = None) -> str:
    """The message as the model reads it: its text, then a line per attachment (and any inlined text).

    With ``read`` (this process read the files) the lines carry the inlined text; without it, only what the
    log knows: names, types, sizes and what became of each (``bots/files/attachments.py``). A voice message's
    transcript follows the text, marked as spoken (``bots/files/voice.py``).
    """
    fresh = read is not None and len(read) == len(message.attachments)
    parts = said(message.content, transcript_of([f.transcript for f in read or []]) or message.transcript)
    if read is not None and fresh:
        parts.extend(label(f.metadata(), text=f.text, image_attached=f.image is not None) for f in read)
    else:
        parts.extend(label(row) for row in message.attachments)
    return "\n".join(parts) if parts else "(no text)"


class ThreadStates:
    """Thread key -> :class:`ThreadState`, bounded twice over.

    Live sessions are capped at ``MAX_LIVE_SESSIONS``: past it, the least recently used idle one is evicted
    (its thread is then orphaned, and gets the card when it speaks). States without a session (orphaned
    threads whose card nobody clicks) are capped too, since each holds a lock and a set: the least recently
    used that nothing runs for are dropped, and SQLite still has their card and their waiting messages.
    """

    def __init__(self, *, log: ThreadLog, max_live: int, max_states: int) -> None:
        self._log = log
        self._max_live = max_live
        self._max_states = max_states
        self._states: OrderedDict[ThreadKey, ThreadState] = OrderedDict()  # least recently used first
        self._keys: dict[int, ThreadKey] = {}  # thread row id -> key, for the erasure journal
        self._live: OrderedDict[ThreadKey, None] = OrderedDict()

    @property
    def live(self) -> int:
        return len(self._live)

    def __len__(self) -> int:
        return len(self._states)

    def live_keys(self) -> list[ThreadKey]:
        """The threads with a live session, least recently used first."""
        return list(self._live)

    def __contains__(self, key: ThreadKey) -> bool:
        return key in self._states

    async def get(
        self, key: ThreadKey, *, title: str | None, now: datetime, title_message_id: str | None = None
    ) -> ThreadState:
        """The thread's state, creating its row and state on first sight; marks it most recently used."""
        state = self._states.get(key)
        if state is None:
            thread_id = await self._log.ensure_thread(
                **key_columns(key), title=title, now=now, title_message_id=title_message_id
            )
            state = self._states.setdefault(key, ThreadState(key=key, thread_id=thread_id))
            self._keys[state.thread_id] = key
            self._bound(keep=state)
        self._states.move_to_end(key)
        return state

    def by_thread_id(self, thread_id: int) -> ThreadState | None:
        key = self._keys.get(thread_id)
        state = None if key is None else self._states.get(key)
        return state if state is not None and state.thread_id == thread_id else None

    def touch(self, state: ThreadState) -> None:
        """Mark the session most recently used and evict the least recently used idle ones over the cap."""
        self._live[state.key] = None
        self._live.move_to_end(state.key)
        for key in list(self._live):
            if len(self._live) <= self._max_live:
                break
            victim = self._states.get(key)
            if victim is None or victim is state or not victim.idle:
                continue
            self.drop(victim, forgotten=False)
            log.info("evicted the idle session of %s (MAX_LIVE_SESSIONS=%d)", key, self._max_live)

    def end_session(self, state: ThreadState) -> None:
        """The thread keeps its state but loses its live session (another worker took the thread)."""
        state.session = None
        state.session_id = None
        self._live.pop(state.key, None)

    def drop(self, state: ThreadState, *, forgotten: bool = True) -> None:
        """Let go of a thread's state; ``forgotten`` tells whatever still runs for it that the thread is gone."""
        state.forgotten = forgotten
        state.session = None
        if self._states.get(state.key) is state:
            del self._states[state.key]
        self._live.pop(state.key, None)
        if self._keys.get(state.thread_id) == state.key:
            del self._keys[state.thread_id]

    def _bound(self, *, keep: ThreadState) -> None:
        if len(self._states) <= self._max_states:
            return
        for victim in list(self._states.values()):
            if len(self._states) <= self._max_states:
                break
            if victim is not keep and victim.droppable and (victim.session is None or victim.idle):
                self.drop(victim, forgotten=False)
