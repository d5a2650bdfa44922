"""Joining a thread with its history: a mention in a thread the bot has no log for reads what was said before it.

"@bot, what do you make of this?" in a thread the bot was not part of should be answered with the context everyone
is looking at. So when a message that mentions the bot arrives in a thread without a log (a Discord thread, a
Slack thread), the router asks the platform's :class:`~bots.seam.ports.ThreadHistory` for the messages before
it: the newest ``JOIN_HISTORY_MESSAGES``, translated by the adapter exactly as delivered messages are (authors,
times, attachments described by name; bots and people the allowlists exclude left out). They are logged before
the mention, each once (the log's unique platform id), as read: no answer is owed for them and a restart posts no
card for them. From then on they are logged messages like any other: deletes and edits follow them, export,
``search_thread`` and a catch-up after a restart see them.

A mention that starts its own thread has nothing before it there, unless it replies to an earlier message (a
Discord reply in a channel: the bot's thread is made from the mention). Then the reply chain it continues (the
message it replies to, the one that replies to, ... up to ``JOIN_HISTORY_MESSAGES``) is the thread's history,
read through the reader's :class:`~bots.seam.ports.ReplyChainHistory` (the join remembers what the mention replied
to) and logged and heard exactly as below. Those messages stay in the channel, so their deletes and edits name the
channel: forgetting looks a message up in every thread of its channel (``bots/router/forgetting.py``). A mention
replying inside a thread reads the thread's history, which holds what it replies to, and nothing more; a chain cut
by a deleted message brings what was read up to it.

Reading the history never holds up the mention's acknowledgement. Slack acknowledges an event only once it is
logged and wants that within 3 seconds, while a long thread, a slow Slack or a rate limit (``conversations.replies``
answers 429 with a Retry-After the client waits out) can take far longer. So the join happens in two steps:

1. :meth:`ThreadJoining.begin`, before the acknowledgement: one transaction makes the thread's row with an open
   join (``storage/joins.py``) holding ids reserved below every id logged afterwards; the mention is then logged
   (waiting for its answer) and acknowledged. Nothing is read from the platform yet.
2. After the acknowledgement the thread's owner reads the history and logs it under the newest reserved ids, so
   in the log's id order (transcripts, catch-up, export, what a turn answers) it comes before the mention however
   late it is written, and before whatever was said in the thread meanwhile, on whichever worker that arrived.

While the join is open nobody answers in the thread (:meth:`ThreadJoining.defer`, on every worker: the open join
is a row, not memory); messages said meanwhile are logged as they come and wait. When the history is in, a fresh
session hears it and answers everything waiting in one turn. A crash in between loses nothing: the mention waits
in the log, the join is still open, and the next start (or the worker that takes the thread over) reads the
history then, before answering.

The session hears the history (``AgentSession.hear``) before the mention: a short history goes to the model as it
was written; one that passes the window is folded by compaction, whose chunked summarizer
(``agent/summarize.py``) plans every request against the window, so the history is summarized rather than cut
and no request is larger than the model takes. A platform that refuses the history (a missing permission or
scope, a rate limit that outlasts the client's retries) or cannot be reached costs only the context: the refusal
is logged once per platform and reason, and the mention is answered with what the bot has.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, Protocol

from agent.session import UserTurn
from bots.router.intake import MessageIntake
from bots.router.thread_state import ThreadState, attachment_json, key_columns, prompt_text
from bots.seam.messages import IncomingMessage, ThreadKey
from bots.seam.ports import HistoryRefused, ReplyChainHistory, ThreadHistory
from storage.leases import Fence, LeaseLost
from storage.protocols import JoinStore, ThreadLog
from storage.records import LoggedMessage, NewMessage, OpenJoin, iso

log = logging.getLogger(__name__)

DEFAULT_JOIN_HISTORY_MESSAGES = 200


def heard(rows: list[LoggedMessage]) -> list[UserTurn]:
    """Logged messages as a session hears them: author, text and a line per attachment (by name)."""
    return [UserTurn(author=row.author_name, text=prompt_text(row), message_id=row.id) for row in rows]


class JoinHost(Protocol):
    """What the join asks of the router once the history is read."""

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> Any: ...

    def fence(self, state: ThreadState) -> Fence | None: ...

    def lease_refused(self, state: ThreadState, exc: LeaseLost) -> None: ...

    async def start_session(self, state: ThreadState, *, origin: str) -> None: ...


class ThreadJoining:
    """Opens a join before the acknowledgement, finishes it after; see the module docstring."""

    def __init__(
        self,
        *,
        intake: MessageIntake,
        log: ThreadLog,
        joins: JoinStore,
        host: JoinHost,
        kick: Callable[[ThreadState], None],
        clock: Callable[[], datetime],
        limit: int = DEFAULT_JOIN_HISTORY_MESSAGES,
    ) -> None:
        self._intake = intake
        self._log = log
        self._joins = joins
        self._host = host
        self._kick = kick
        self._clock = clock
        self._limit = limit
        self._readers: dict[str, ThreadHistory] = {}
        self._finishing: set[int] = set()  # threads whose history this process is reading now
        self._refusals_told: set[tuple[str, str]] = set()

    def register(self, platform: str, reader: ThreadHistory) -> None:
        """Read the history of ``platform``'s threads through ``reader`` when the bot is brought into one."""
        self._readers[platform] = reader

    async def begin(self, message: IncomingMessage) -> bool:
        """True when ``message`` brings the bot into a thread: its row is made with the join open (nothing is read
        yet; the caller logs the message and acknowledges it). False for a message that brings it into nothing
        (no mention, a thread with a log, a platform without history, a mention that starts its thread and replies
        to nothing)."""
        key = message.thread
        reader = self._readers.get(key.platform)
        starts_thread = key.thread == message.message_id  # a Slack top-level mention, a Discord thread made from it
        # ... which has nothing before it, unless it replies to an earlier message: then its reply chain does.
        replied_to = message.replies_to if starts_thread and isinstance(reader, ReplyChainHistory) else None
        if (
            not message.mentions_bot
            or reader is None
            or self._limit <= 0
            or (starts_thread and replied_to is None)
            or await self._intake.is_tracked(key, look_again=False)
        ):
            return False
        thread_id = await self._joins.begin(
            **key_columns(key),
            title=message.thread_title,
            title_message_id=message.message_id if message.title_from_text else None,
            before_message_id=message.message_id,
            room=self._limit,
            now=self._clock(),
            replied_to=replied_to,
        )
        return thread_id is not None

    async def defer(self, state: ThreadState) -> bool:
        """True when the thread's join is open: nothing is answered until its history is logged. The join is
        finished here, by the thread's owner (the caller holds the lease), unless it is under way already."""
        if state.thread_id in self._finishing:
            return True
        join = await self._joins.open_join(thread_id=state.thread_id)
        if join is None:
            return False
        if state.thread_id not in self._finishing:
            self._finishing.add(state.thread_id)
            state.pinned += 1  # kept while the history is read: the session it ends with is this state's
            self._host.spawn(self._finish(state, join))
        return True

    async def _finish(self, state: ThreadState, join: OpenJoin) -> None:
        """After the acknowledgement: read, log before the mention, then answer what waits with the history.

        The thread counts as being joined until its new session is live, so nothing slips in between the history's
        commit and the session (a card would be shown for a thread that merely had history before the mention)."""
        try:
            history = await self._read(state.key, before=join.before_message_id, replied_to=join.replied_to)
            now = iso(self._clock())
            news = [
                NewMessage(state.thread_id, m.message_id, m.author.id, m.author.display_name, "user", m.text,
                           _attachments(m), "answered", iso(m.sent_utc), now)
                for m in history
            ]  # fmt: skip
            try:
                logged = await self._joins.finish(join=join, history=news, fence=self._host.fence(state))
            except LeaseLost as exc:
                self._host.lease_refused(state, exc)  # the new owner finishes the join
                return
            except Exception:  # the join stays open: the next message, the poll or the next start finishes it
                log.exception("logging the history of %s failed; the mention waits", state.key)
                return
            log.info("joined %s with %d earlier message(s)", state.key, len(logged))
            async with state.lock:
                if state.session is None:  # the history is the new session's, not a card's
                    await self._host.start_session(state, origin="fresh")
                    # All logged and not waiting: the history, and anything said meanwhile that wants no answer.
                    self.hear(state, await self._log.transcript(thread_id=state.thread_id))
                self._kick(state)
        finally:
            self._finishing.discard(state.thread_id)
            state.pinned -= 1

    async def _read(self, key: ThreadKey, *, before: str, replied_to: str | None) -> list[IncomingMessage]:
        reader = self._readers.get(key.platform)
        if reader is None:
            return []
        try:
            if replied_to is not None and isinstance(reader, ReplyChainHistory):
                history = await reader.read_reply_chain(thread=key, replied_to=replied_to, limit=self._limit)
            else:
                history = await reader.read_history(thread=key, before=before, limit=self._limit)
        except HistoryRefused as exc:
            self._tell_once(key, str(exc))
            return []
        except Exception as exc:  # the context is lost, never the mention's answer
            log.warning("reading the history of %s failed", key, exc_info=exc)
            return []
        return [m for m in history if m.thread == key and m.message_id != before][-self._limit :]

    def _tell_once(self, key: ThreadKey, reason: str) -> None:
        told = (key.platform, reason)
        if told not in self._refusals_told:
            self._refusals_told.add(told)
            log.warning("%s refused the history of %s (%s); answering with what I have", key.platform, key, reason)

    @staticmethod
    def hear(state: ThreadState, rows: list[LoggedMessage]) -> None:
        """The thread's live session takes ``rows`` in as context for its next answer (none live: nothing to do)."""
        if state.session is not None and rows:
            state.session.hear(heard(rows))


def _attachments(message: IncomingMessage) -> str:
    return json.dumps([attachment_json(a) for a in message.attachments])
