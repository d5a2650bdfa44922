"""Attachments in the answering flow: held from intake until their turn, read once, then what the turn sends.

Intake logs a message with its attachments' metadata (``used: pending``) and holds the files' sources in the
thread's memory; nothing is downloaded before the platform has its acknowledgement. The turn that answers the
message reads them (``bots/files/attachments.py``) for the model the thread's session uses, writes what became of
each into the log (metadata only), tells the thread in one short note about any bad file, and hands the
session text to inline and images to attach. An audio file's transcript (``bots/files/voice.py``) is logged with
its message (``messages.transcript``) in the same write. What was read stays in memory until a posted reply has answered
its message, so a failed turn's retry does not download again.

A restart (or another worker's takeover) keeps only the log: a waiting message whose files are still pending is
fetched again from its platform for fresh sources (``bots/files/refetching.py``) and its files are read then, as
above; a file that cannot be had that way is named "the bot restarted before reading it". Files read before the
restart are not read again: the catch-up transcript names them, a voice message's transcript is in the log, and
the bot's own replies carry what was learned from the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.parts import ImagePart
from agent.transcription import SpeechToText
from bots.files.attachments import AttachmentLimits, HeldFiles, ReadFile, Use, read_files, refusal_note
from bots.files.downloads import FetchPolicy
from bots.files.reading_box import ReadingBox
from bots.files.refetching import Refetching, has_pending
from bots.files.voice import transcript_of
from bots.router.thread_state import prompt_text
from bots.seam.messages import Attachment, ThreadKey
from bots.seam.ports import MessageFiles, ThreadOutbox
from storage.protocols import ThreadLog
from storage.records import LoggedMessage

log = logging.getLogger(__name__)

RESTARTED = "the bot restarted before reading it"


@dataclass(frozen=True, slots=True)
class TurnInput:
    """A waiting message as the session should get it: the text with its files inlined, and its images."""

    text: str
    images: tuple[ImagePart, ...] = ()


class TurnFiles:
    """Reads a turn's held files and renders its messages (the router's one call per turn).

    It owns the router's reading box (its workers start with the first file); :meth:`close` ends them.
    """

    def __init__(
        self,
        *,
        log: ThreadLog,
        limits: AttachmentLimits | None = None,
        policy: FetchPolicy | None = None,
        speech: SpeechToText | None = None,
    ) -> None:
        self._log = log
        self._speech = speech  # None: audio is named like any file (TRANSCRIPTION_MODEL unset)
        self._limits = limits or AttachmentLimits()
        self._policy = policy or FetchPolicy.for_platforms()  # no configured hosts: the platforms' own only
        self._box = ReadingBox()
        self._refetching = Refetching()

    def register(self, platform: str, files: MessageFiles) -> None:
        """Fetch ``platform``'s messages again through ``files`` for the files a restart left unread."""
        self._refetching.register(platform, files)

    async def prepare(
        self,
        *,
        held: HeldFiles,
        thread: ThreadKey,
        thread_id: int,
        waiting: list[LoggedMessage],
        vision: bool,
        outbox: ThreadOutbox,
    ) -> list[TurnInput]:
        """Read what is unread among ``waiting``; one TurnInput per message, in order."""
        again = self._refetching.for_turn(thread)
        for message in waiting:
            attachments = held.unread.pop(message.id, None)
            if attachments is not None:
                read = await self._read(attachments, vision=vision)
            elif message.id not in held.read and has_pending(message):  # a restart lost their sources
                read = await self._read_again(message, await again.files_of(message), vision=vision)
            else:
                continue
            held.read[message.id] = read
            await self._log.set_attachments(
                thread_id=thread_id,
                message_id=message.id,
                attachments=[f.metadata() for f in read],
                transcript=transcript_of([f.transcript for f in read]),
            )
            note = refusal_note(read)
            if note is not None:
                try:
                    await outbox.post_notice(thread=thread, text=note)
                except Exception:
                    log.exception("could not post the note about unreadable files in %s", thread)
        return [self.render(message, held.read.get(message.id)) for message in waiting]

    async def _read(self, attachments: tuple[Attachment, ...], *, vision: bool) -> list[ReadFile]:
        return await read_files(
            attachments, vision=vision, limits=self._limits, policy=self._policy, box=self._box, speech=self._speech
        )

    async def _read_again(
        self, message: LoggedMessage, fresh: list[Attachment | None], *, vision: bool
    ) -> list[ReadFile]:
        """The files the platform gave again (``fresh``, one entry per logged row) read; the others as logged."""
        found = iter(await self._read(tuple(a for a in fresh if a is not None), vision=vision))
        return [
            next(found) if a is not None else _as_logged(row) for row, a in zip(message.attachments, fresh, strict=True)
        ]

    async def close(self) -> None:
        await self._box.close()

    @staticmethod
    def render(message: LoggedMessage, read: list[ReadFile] | None = None) -> TurnInput:
        images = tuple(f.image for f in read or [] if f.image is not None)
        return TurnInput(text=prompt_text(message, read), images=images)


def _as_logged(row: Mapping[str, Any]) -> ReadFile:
    """A logged file this process could not read: one still pending is named as left unread by a restart; one read
    before it keeps what became of it."""
    try:
        use = Use(str(row.get("used")))
    except ValueError:
        use = Use.PENDING
    if use == Use.PENDING:
        return ReadFile(_described(row), Use.REFUSED, RESTARTED)
    why = row.get("why")
    return ReadFile(_described(row), use, str(why) if why else None)


def _described(row: Mapping[str, Any]) -> Attachment:
    """A logged attachment's description, for a file this process never held (logged before a restart)."""
    return Attachment(str(row.get("filename")), str(row.get("content_type")), int(row.get("size_bytes") or 0))
