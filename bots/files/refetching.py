"""Files a restart left unread: their message fetched again from its platform, for fresh sources to read them from.

Intake holds where a file downloads from (a URL, and the token it needs) in memory only, never in the log: a Discord
CDN URL is signed and expires, and a token has no place in a database. A bot that restarts, or a worker that takes
a thread over from one that died, with a message still waiting knows that message's files only by the log's
metadata, each still marked ``used: pending``. The turn that answers the message asks its platform for the message
once more (:class:`~bots.seam.ports.MessageFiles`: Discord's ``GET /channels/{thread}/messages/{id}``, Slack's
``conversations.replies`` narrowed to the message's ts), and gets its files back with fresh sources. They are then
read exactly as a live turn reads them (``bots/files/attachment_turns.py``, ``bots/files/attachments.py``: the same
fetch policy, caps and transcription), and what became of each is logged, so no file is read twice.

Bounded: only the waiting messages of the turn being answered, only their files still pending (a deleted or
forgotten message has none: its row was blanked and no longer waits), at most :data:`MAX_MESSAGES_PER_TURN`
messages a turn, each fetch within :data:`FETCH_TIMEOUT_S`. When the platform no longer has the message, refuses
or fails to show it, has no files at all (the console), or the message no longer carries the file, the file is
named as one the bot restarted before reading, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from bots.files.attachments import Use
from bots.seam.messages import Attachment, ThreadKey
from bots.seam.ports import FilesRefused, MessageFiles
from storage.records import LoggedMessage

log = logging.getLogger(__name__)

MAX_MESSAGES_PER_TURN = 20  # a catch-up after a long outage: the rest are named, not fetched
FETCH_TIMEOUT_S = 10.0


def has_pending(message: LoggedMessage) -> bool:
    """Whether any of the message's files was logged and never read (``used: pending``)."""
    return any(row.get("used") == Use.PENDING for row in message.attachments)


def matched(rows: Sequence[Mapping[str, Any]], found: Sequence[Attachment]) -> list[Attachment | None]:
    """For each logged row still pending, the platform's file of the same name (first unused one, in order); None
    for a row already read and for a file the message no longer carries (an edit removed it)."""
    left = list(found)
    files: list[Attachment | None] = []
    for row in rows:
        same = (i for i, a in enumerate(left) if a.filename == row.get("filename"))
        index = next(same, None) if row.get("used") == Use.PENDING else None
        files.append(left.pop(index) if index is not None else None)
    return files


class Refetching:
    """Each platform's :class:`MessageFiles` (registered by its adapter), and one turn's fetches through them."""

    def __init__(self) -> None:
        self._platforms: dict[str, MessageFiles] = {}

    def register(self, platform: str, files: MessageFiles) -> None:
        self._platforms[platform] = files

    def for_turn(self, thread: ThreadKey) -> TurnRefetch:
        return TurnRefetch(thread, self._platforms.get(thread.platform))


class TurnRefetch:
    """One turn's fetches: at most :data:`MAX_MESSAGES_PER_TURN` messages of its thread."""

    def __init__(self, thread: ThreadKey, files: MessageFiles | None) -> None:
        self._thread = thread
        self._files = files
        self._left = MAX_MESSAGES_PER_TURN

    async def files_of(self, message: LoggedMessage) -> list[Attachment | None]:
        """One entry per logged row of ``message``: the file to read, with a fresh source, or None (see
        :func:`matched`; every entry is None when the message could not be fetched)."""
        nothing: list[Attachment | None] = [None] * len(message.attachments)
        if self._files is None:
            return nothing
        if self._left <= 0:
            log.warning("not fetching message %s of %s again: %d already this turn", message.id, self._thread,
                        MAX_MESSAGES_PER_TURN)  # fmt: skip
            return nothing
        self._left -= 1
        found = await self._fetched(message)
        return nothing if found is None else matched(message.attachments, found)

    async def _fetched(self, message: LoggedMessage) -> tuple[Attachment, ...] | None:
        assert self._files is not None
        where = f"message {message.id} of {self._thread}"
        try:
            async with asyncio.timeout(FETCH_TIMEOUT_S):
                found = await self._files.message_files(thread=self._thread, message_id=message.platform_message_id)
        except FilesRefused as exc:
            log.warning("could not fetch %s again for its unread files: %s", where, exc)
            return None
        except TimeoutError:
            log.warning("fetching %s again took over %g s: its files stay unread", where, FETCH_TIMEOUT_S)
            return None
        except Exception:  # a client library's surprise costs the files, never the turn
            log.exception("fetching %s again for its unread files failed", where)
            return None
        if found is None:
            log.info("%s is no longer on its platform: its files stay unread", where)
        else:
            log.info("fetched %s again for its unread files: the platform lists %d file(s)", where, len(found))
        return found
