"""Attachments in the answering flow: held from intake until their turn, read once, then what the turn sends.

Intake logs a message with its attachments' metadata (``used: pending``) and holds the files' sources in the
thread's memory; nothing is downloaded before the platform has its acknowledgement. The turn that answers the
message reads them (``bots/files/attachments.py``) for the model the thread's session uses, writes what became of
each into the log (metadata only), tells the thread in one short note about any bad file, and hands the
session text to inline and images to attach. An audio file's transcript (``bots/files/voice.py``) is logged with
its message (``messages.transcript``) in the same write. What was read stays in memory until a posted reply has answered
its message, so a failed turn's retry does not download again; a restart keeps only the names (the catch-up
transcript shows them) and the bot's own replies, which carry what was learned from the files.
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
from bots.files.voice import transcript_of
from bots.router.thread_state import prompt_text
from bots.seam.messages import Attachment, ThreadKey
from bots.seam.ports import ThreadOutbox
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
        for message in waiting:
            attachments = held.unread.pop(message.id, None)
            if attachments is not None:
                read = await read_files(
                    attachments,
                    vision=vision,
                    limits=self._limits,
                    policy=self._policy,
                    box=self._box,
                    speech=self._speech,
                )
            elif message.id not in held.read and any(a.get("used") == Use.PENDING for a in message.attachments):
                read = [ReadFile(_described(a), Use.REFUSED, RESTARTED) for a in message.attachments]
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

    async def close(self) -> None:
        await self._box.close()

    @staticmethod
    def render(message: LoggedMessage, read: list[ReadFile] | None = None) -> TurnInput:
        images = tuple(f.image for f in read or [] if f.image is not None)
        return TurnInput(text=prompt_text(message, read), images=images)


def _described(row: Mapping[str, Any]) -> Attachment:
    """A logged attachment's description, for a file this process never held (logged before a restart)."""
    return Attachment(str(row.get("filename")), str(row.get("content_type")), int(row.get("size_bytes") or 0))
