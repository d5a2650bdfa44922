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
read through the reader's :class:`~bots.seam.ports.ReplyChainHistory` and logged and heard exactly as above. Those
messages stay in the channel, so their deletes and edits name the channel: forgetting looks a message up in every
thread of its channel (``bots/router/forgetting.py``). A mention replying inside a thread reads the thread's
history, which holds what it replies to, and nothing more.

The session that answers the mention starts fresh and hears them (``AgentSession.hear``) before the mention: a
short history goes to the model as it was written; one that passes the window is folded by compaction, whose
chunked summarizer (``agent/summarize.py``) plans every request against the window, so the history is summarized
rather than cut and no request is larger than the model takes. ``JOIN_HISTORY_MESSAGES`` bounds what is read.

While a thread is being joined, other messages for it wait until its history is in the log, so nothing said
meanwhile is logged before what was said earlier (and a redelivered mention finds the thread tracked: it adds
nothing). A platform that refuses the history (a missing permission or scope) costs only the context: the refusal
is logged once per platform and reason, and the mention is answered with what the bot has (a reply chain cut by a
deleted message brings what was read up to it).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from agent.session import UserTurn
from bots.router.intake import MessageIntake
from bots.router.thread_state import ThreadState, prompt_text
from bots.seam.messages import IncomingMessage, ThreadKey
from bots.seam.ports import HistoryRefused, ReplyChainHistory, ThreadHistory
from storage.records import LoggedMessage

log = logging.getLogger(__name__)

DEFAULT_JOIN_HISTORY_MESSAGES = 200


def heard(rows: list[LoggedMessage]) -> list[UserTurn]:
    """Logged messages as a session hears them: author, text and a line per attachment (by name)."""
    return [UserTurn(author=row.author_name, text=prompt_text(row), message_id=row.id) for row in rows]


class ThreadJoining:
    """Reads and logs a thread's history when a mention brings the bot into it; see the module docstring."""

    def __init__(self, *, intake: MessageIntake, limit: int = DEFAULT_JOIN_HISTORY_MESSAGES) -> None:
        self._intake = intake
        self._limit = limit
        self._readers: dict[str, ThreadHistory] = {}
        self._joining: dict[ThreadKey, asyncio.Event] = {}
        self._refusals_told: set[tuple[str, str]] = set()

    def register(self, platform: str, reader: ThreadHistory) -> None:
        """Read the history of ``platform``'s threads through ``reader`` when the bot is brought into one."""
        self._readers[platform] = reader

    async def join(self, message: IncomingMessage) -> list[LoggedMessage] | None:
        """The history logged for the thread ``message`` brings the bot into (oldest first, perhaps none); None
        when it brings the bot into nothing (no mention, a thread with a log, a platform without history)."""
        key = message.thread
        while (joining := self._joining.get(key)) is not None:
            await joining.wait()  # the thread's history goes into the log first
        reader = self._readers.get(key.platform)
        if (
            not message.mentions_bot
            or reader is None
            or self._limit <= 0
            or await self._intake.is_tracked(key, look_again=False)
        ):
            return None
        done = self._joining[key] = asyncio.Event()
        try:
            # The thread's row first, named as the mention names it: the thread is tracked from now on, so what
            # people write while its history is read reaches the router (and waits above for the history).
            await self._intake.state_of(message)
            history = await self._read(reader, message)
            # Submitted in order, so the group commit logs them in order (bots/router/intake.py).
            logged = await asyncio.gather(
                *(self._intake.record(replace(m, thread_title=None, title_from_text=False), read=True) for m in history)
            )
        finally:
            del self._joining[key]
            done.set()
        rows = [row for _, row, _ in logged]
        if rows:
            log.info("joined %s with %d earlier message(s)", key, len(rows))
        return rows

    async def _read(self, reader: ThreadHistory, message: IncomingMessage) -> list[IncomingMessage]:
        key = message.thread
        try:
            if key.thread != message.message_id:
                history = await reader.read_history(thread=key, before=message.message_id, limit=self._limit)
            elif message.replies_to is not None and isinstance(reader, ReplyChainHistory):
                # The mention starts the thread but answers an earlier message: the chain it continues comes along.
                history = await reader.read_reply_chain(thread=key, replied_to=message.replies_to, limit=self._limit)
            else:
                return []  # the mention starts the thread (a Slack top-level mention, a Discord thread made from it)
        except HistoryRefused as exc:
            told = (key.platform, str(exc))
            if told not in self._refusals_told:
                self._refusals_told.add(told)
                log.warning("%s refused the history of %s (%s); answering with what I have", key.platform, key, exc)
            return []
        return [m for m in history if m.thread == key and m.message_id != message.message_id][-self._limit :]

    @staticmethod
    def hear(state: ThreadState, rows: list[LoggedMessage]) -> None:
        """The thread's live session takes ``rows`` in as context for its next answer (none live: nothing to do)."""
        if state.session is not None and rows:
            state.session.hear(heard(rows))
