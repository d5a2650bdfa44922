"""The one attachment pipeline both platforms use: download with a cap and a timeout, sniff, read.

Adapters only describe a file (name, the type and size the platform claims, a :class:`~bots.seam.messages.FileSource`
to download it from: a Discord CDN URL, a Slack ``url_private`` with the bot token as Bearer). Where a file may be
downloaded from, and so where the token may go, is ``bots/files/downloads.py``'s one policy: a file off its platform's
hosts is named to the model and never fetched. The router reads
the files of a turn's messages just before the turn (``bots/files/attachment_turns.py``), off any platform's
acknowledgement path, so a slow download never costs a Slack ack or a Discord interaction. A source is held in
memory only: after a restart the platform describes the file again (``bots/files/refetching.py``).

What a file becomes is decided by its bytes, not by its name or claimed type:

- an image (Pillow opens and verifies it) is sent to the model as an image part when the thread's model can
  see, shrunk and re-encoded when it is too large; a model that cannot see gets a one-line note instead, and
  the image is never downloaded;
- a PDF (``%PDF-``) has its text extracted by pypdf; a password-protected one is refused;
- anything that decodes as text is inlined, capped with a visible marker;
- anything else is noted by name;
- audio, when ``TRANSCRIPTION_MODEL`` is set, is transcribed (``bots/files/voice.py``).

The reading itself (pypdf, Pillow) happens in the reading box (``bots/files/reading_box.py``,
``bots/files/file_reading.py``): separate processes without the bot's secrets, with a time budget per file and per
message, so a hostile file costs at most its budget and never the event loop's executor.

Every outcome has a name (:class:`Use`) and, unless the file was used, a short reason: that is what the log
keeps (name, type, size, use, reason, never the bytes) and what the model and the thread are told. A bad file
is refused with a reason, never an exception out of a turn.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic

from agent.parts import ImagePart
from agent.transcription import SpeechToText
from bots.files.downloads import Downloader, FetchPolicy, Refused, too_large
from bots.files.file_reading import Reading, ReadRequest
from bots.files.reading_box import OverBudget, ReadingBox, WorkerLost
from bots.files.voice import is_audio, transcribe, unspoken_note
from bots.seam.messages import Attachment

log = logging.getLogger(__name__)

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic")


@dataclass(frozen=True, slots=True)
class AttachmentLimits:
    """How much of a file the bot will take. Defaults suit the common vision models' own input limits."""

    max_download_bytes: int = 20_000_000
    download_timeout_s: float = 20.0
    max_text_chars: int = 20_000
    max_pdf_pages: int = 50
    image_max_side_px: int = 1568
    image_max_bytes: int = 3_500_000  # under Anthropic's 5 MB per image once base64-encoded
    image_max_pixels: int = 50_000_000  # decompression-bomb guard, checked before decoding
    image_max_decoded_bytes: int = 128_000_000  # the decoded pixels' memory, checked before decoding
    read_budget_s: float = 5.0  # one file's reading in the reading box, once a worker has it
    message_read_budget_s: float = 15.0  # all of one message's files, from the first one's reading
    audio_max_seconds: float = 600.0  # longer audio (as its platform states) is not transcribed
    transcription_budget_s: float = 60.0  # one audio file's transcription, once downloaded


class Use(enum.StrEnum):
    """What became of an attachment (logged as ``used``)."""

    PENDING = "pending"  # logged, not read yet
    INLINED = "inlined"
    IMAGE = "image"
    NOTED = "noted"  # mentioned by name only: a kind the model cannot take
    REFUSED = "refused"  # a bad file: too large, corrupt, locked, or its download failed
    TRANSCRIBED = "transcribed"  # audio: its transcript is the message's (``messages.transcript``)
    UNTRANSCRIBED = "untranscribed"  # audio that could not be transcribed: too large, too long, a failure


@dataclass(frozen=True, slots=True)
class ReadFile:
    """An attachment after reading: its real type and what it became. ``text`` and ``image`` stay in memory."""

    attachment: Attachment
    use: Use
    why: str | None = None
    text: str | None = None
    image: ImagePart | None = None
    transcript: str | None = None

    def metadata(self) -> dict[str, object]:
        """What the log keeps: never the content."""
        return metadata(self.attachment, use=self.use, why=self.why)


@dataclass(slots=True)
class HeldFiles:
    """One thread's attachments between intake and a posted answer, by the message's log id."""

    unread: dict[int, tuple[Attachment, ...]] = field(default_factory=dict)
    read: dict[int, list[ReadFile]] = field(default_factory=dict)

    def hold(self, message_id: int, attachments: tuple[Attachment, ...]) -> None:
        if attachments:
            self.unread[message_id] = attachments

    def release(self, message_ids: list[int]) -> None:
        """Let go of the files of messages that were answered or deleted."""
        for message_id in message_ids:
            self.unread.pop(message_id, None)
            self.read.pop(message_id, None)


def metadata(attachment: Attachment, *, use: Use = Use.PENDING, why: str | None = None) -> dict[str, object]:
    row: dict[str, object] = {
        "filename": attachment.filename,
        "content_type": attachment.content_type,
        "size_bytes": attachment.size_bytes,
        "used": str(use),
    }
    if why:
        row["why"] = why
    return row


def label(row: Mapping[str, Any], *, text: str | None = None, image_attached: bool = False) -> str:
    """An attachment as one line of a prompt or transcript, with its text under it when it was inlined."""
    base = f"[attachment: {row.get('filename')} ({row.get('content_type')}, {row.get('size_bytes')} bytes)"
    used, why = row.get("used"), row.get("why")
    text = text if text is not None else row.get("text")  # rows logged before the pipeline kept small texts
    if used == Use.INLINED:
        return f"{base}]\n{text}" if text is not None else f"{base}, read earlier; its text is not kept]"
    if used == Use.IMAGE:
        return f"{base}, attached as an image]" if image_attached else f"{base}, seen earlier as an image]"
    if used == Use.NOTED:
        return f"{base}, not read: {why}]"
    if used == Use.REFUSED:
        return f"{base}, could not be read: {why}]"
    if used == Use.TRANSCRIBED:
        return f"{base}, audio: transcribed in this message]"
    if used == Use.UNTRANSCRIBED:
        return f"{base}, audio: could not be transcribed: {why}]"
    return f"{base}]\n{text}" if text else f"{base}]"


def refusal_note(files: list[ReadFile]) -> str | None:
    """The short note a thread gets about its bad files and its audio that was not transcribed, or None."""
    refused = [f for f in files if f.use == Use.REFUSED]
    parts = "; ".join(f"{f.attachment.filename} ({f.why})" for f in refused)
    notes = [f"I could not read {parts}."] if refused else []
    unspoken = unspoken_note([(f.attachment, f.why or "") for f in files if f.use == Use.UNTRANSCRIBED])
    notes += [unspoken] if unspoken else []
    return " ".join(notes) or None


def looks_like_image(attachment: Attachment) -> bool:
    return attachment.content_type.startswith("image/") or attachment.filename.lower().endswith(IMAGE_EXTENSIONS)


async def read_files(
    attachments: tuple[Attachment, ...],
    *,
    vision: bool,
    limits: AttachmentLimits,
    policy: FetchPolicy,
    box: ReadingBox | None = None,
    speech: SpeechToText | None = None,
) -> list[ReadFile]:
    """Read a message's attachments concurrently, in order; every outcome is logged with its reason.

    ``box`` is the router's reading box; without one (a script, a test) the message gets a box of its own.
    ``speech`` transcribes audio (None: audio is read like any file, and so named).
    """
    if not attachments:
        return []
    if box is None:
        async with ReadingBox() as own:
            return await read_files(attachments, vision=vision, limits=limits, policy=policy, box=own, speech=speech)
    clock = _MessageClock(limits.message_read_budget_s)
    downloads = Downloader(policy=policy, max_bytes=limits.max_download_bytes, timeout_s=limits.download_timeout_s)
    async with downloads as http:
        read = await asyncio.gather(
            *(
                _read(a, http=http, vision=vision, limits=limits, box=box, clock=clock, speech=speech)
                for a in attachments
            )
        )
    for file in read:
        how = f"{file.use}" + (f" ({file.why})" if file.why else "")
        level = logging.WARNING if file.use in (Use.REFUSED, Use.UNTRANSCRIBED) else logging.INFO
        log.log(
            level,
            "attachment %s (%s, %d bytes): %s",
            file.attachment.filename,
            file.attachment.content_type,
            file.attachment.size_bytes,
            how,
        )
    return list(read)


async def _read(
    attachment: Attachment,
    *,
    http: Downloader,
    vision: bool,
    limits: AttachmentLimits,
    box: ReadingBox,
    clock: _MessageClock,
    speech: SpeechToText | None = None,
) -> ReadFile:
    if attachment.unreadable is not None:
        return ReadFile(attachment, Use.REFUSED, attachment.unreadable)
    if not vision and looks_like_image(attachment):
        return ReadFile(attachment, Use.NOTED, "this model cannot see images")
    audio = speech is not None and is_audio(attachment)
    if attachment.size_bytes > limits.max_download_bytes:
        return ReadFile(attachment, Use.UNTRANSCRIBED if audio else Use.REFUSED, _too_large(limits))
    if attachment.source is None:
        return ReadFile(attachment, Use.NOTED, "the platform gave no link to download it")
    off_host = http.why_not(attachment.source)
    if off_host is not None:
        return ReadFile(attachment, Use.NOTED, off_host)
    if audio and speech is not None:
        return await _transcribed(attachment, http=http, speech=speech, limits=limits)
    try:
        data = await http.download(attachment.source, html_expected=attachment.content_type == "text/html")
        return await _interpret(attachment, data, vision=vision, limits=limits, box=box, clock=clock)
    except Refused as exc:
        return ReadFile(attachment, Use.REFUSED, str(exc))
    except Exception:  # a library's surprise on a hostile file: the file is refused, the turn goes on
        log.exception("reading attachment %s failed", attachment.filename)
        return ReadFile(attachment, Use.REFUSED, "it could not be read")


async def _transcribed(
    attachment: Attachment, *, http: Downloader, speech: SpeechToText, limits: AttachmentLimits
) -> ReadFile:
    try:
        done = await transcribe(
            attachment,
            http=http,
            speech=speech,
            max_seconds=limits.audio_max_seconds,
            budget_s=limits.transcription_budget_s,
            max_chars=limits.max_text_chars,
        )
    except Exception:  # a surprise from the provider's client: the file is not transcribed, the turn goes on
        log.exception("transcribing %s failed", attachment.filename)
        return ReadFile(attachment, Use.UNTRANSCRIBED, "an unexpected error")
    if done.transcript is None:
        return ReadFile(attachment, Use.UNTRANSCRIBED, done.why)
    return ReadFile(attachment, Use.TRANSCRIBED, transcript=done.transcript)


def _too_large(limits: AttachmentLimits) -> str:
    return too_large(limits.max_download_bytes)


# -- what the bytes are: asked of the reading box ------------------------------------------------------------


@functools.cache
def _reading() -> pydantic.TypeAdapter[Reading]:
    """A worker's reply is validated like any other input from outside (built on first use: start-up stays cheap)."""
    return pydantic.TypeAdapter(Reading)


def _parsed(header: bytes, payload: bytes) -> tuple[Reading, bytes]:
    return _reading().validate_json(header), payload  # pydantic's ValidationError is a ValueError


class _MessageClock:
    """One message's reading deadline, set when its first file is handed to the box (downloads not counted)."""

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self._deadline: float | None = None

    def deadline(self) -> float:
        if self._deadline is None:
            self._deadline = asyncio.get_running_loop().time() + self.budget_s
        return self._deadline

    def spent(self) -> bool:
        return self._deadline is not None and asyncio.get_running_loop().time() >= self._deadline


async def _interpret(
    attachment: Attachment,
    data: bytes,
    *,
    vision: bool,
    limits: AttachmentLimits,
    box: ReadingBox,
    clock: _MessageClock,
) -> ReadFile:
    request = ReadRequest(
        content_type=attachment.content_type,
        named_image=looks_like_image(attachment),
        vision=vision,
        max_text_chars=limits.max_text_chars,
        max_pdf_pages=limits.max_pdf_pages,
        image_max_side_px=limits.image_max_side_px,
        image_max_bytes=limits.image_max_bytes,
        image_max_pixels=limits.image_max_pixels,
        image_max_decoded_bytes=limits.image_max_decoded_bytes,
        cpu_budget_s=limits.read_budget_s,
    )
    try:
        reading, payload = await box.read(
            request.encode(), data, parse=_parsed, budget_s=limits.read_budget_s, deadline=clock.deadline()
        )
    except OverBudget:
        if clock.spent():
            return ReadFile(attachment, Use.REFUSED, f"its message's files took over {clock.budget_s:g} s to read")
        return ReadFile(attachment, Use.REFUSED, f"it took over {limits.read_budget_s:g} s to read")
    except WorkerLost as exc:
        log.warning("the reading box failed on %s: %s", attachment.filename, exc)
        return ReadFile(attachment, Use.REFUSED, "it could not be read")
    if reading.error:
        log.warning("reading %s failed inside the reading box: %s", attachment.filename, reading.error)
    return _read_file(attachment, len(data), reading, payload, limits=limits)


def _read_file(
    attachment: Attachment, size: int, reading: Reading, payload: bytes, *, limits: AttachmentLimits
) -> ReadFile:
    use = Use(reading.use)
    if use == Use.REFUSED:
        return ReadFile(attachment, Use.REFUSED, reading.why or "it could not be read")
    sized = Attachment(attachment.filename, reading.content_type or attachment.content_type, size)
    if use != Use.IMAGE:
        return ReadFile(sized, use, reading.why, text=reading.text)
    if reading.image_mime is None or not payload or len(payload) > limits.image_max_bytes:
        log.warning("the reading box sent no usable image for %s", attachment.filename)
        return ReadFile(attachment, Use.REFUSED, "it could not be read")
    image = ImagePart(mime=reading.image_mime, data=payload, width=reading.image_width, height=reading.image_height)
    return ReadFile(sized, Use.IMAGE, image=image)
