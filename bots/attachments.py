"""The one attachment pipeline both platforms use: download with a cap and a timeout, sniff, read.

Adapters only describe a file (name, the type and size the platform claims, a :class:`~bots.messages.FileSource`
to download it from: a Discord CDN URL, a Slack ``url_private`` with the bot token as Bearer). Where a file may be
downloaded from, and so where the token may go, is ``bots/downloads.py``'s one policy: a file off its platform's
hosts is named to the model and never fetched. The router reads
the files of a turn's messages just before the turn (``bots/attachment_turns.py``), off any platform's
acknowledgement path, so a slow download never costs a Slack ack or a Discord interaction.

What a file becomes is decided by its bytes, not by its name or claimed type:

- an image (Pillow opens and verifies it) is sent to the model as an image part when the thread's model can
  see, shrunk and re-encoded when it is too large; a model that cannot see gets a one-line note instead, and
  the image is never downloaded;
- a PDF (``%PDF-``) has its text extracted by pypdf; a password-protected one is refused;
- anything that decodes as text is inlined, capped with a visible marker;
- anything else is noted by name.

Every outcome has a name (:class:`Use`) and, unless the file was used, a short reason: that is what the log
keeps (name, type, size, use, reason, never the bytes) and what the model and the thread are told. A bad file
is refused with a reason, never an exception out of a turn.
"""

from __future__ import annotations

import asyncio
import enum
import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, UnidentifiedImageError

from agent.parts import ImagePart
from bots.downloads import Downloader, FetchPolicy, Refused, too_large
from bots.messages import Attachment

log = logging.getLogger(__name__)

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic")
SENT_IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
CUT_MARKER = "\n[… file cut here: {omitted:,} more characters not shown …]"
JPEG_QUALITY = 85


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


class Use(enum.StrEnum):
    """What became of an attachment (logged as ``used``)."""

    PENDING = "pending"  # logged, not read yet
    INLINED = "inlined"
    IMAGE = "image"
    NOTED = "noted"  # mentioned by name only: a kind the model cannot take
    REFUSED = "refused"  # a bad file: too large, corrupt, locked, or its download failed


@dataclass(frozen=True, slots=True)
class ReadFile:
    """An attachment after reading: its real type and what it became. ``text`` and ``image`` stay in memory."""

    attachment: Attachment
    use: Use
    why: str | None = None
    text: str | None = None
    image: ImagePart | None = None

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
    return f"{base}]\n{text}" if text else f"{base}]"


def refusal_note(files: list[ReadFile]) -> str | None:
    """The short note a thread gets about its bad files, or None when there were none."""
    refused = [f for f in files if f.use == Use.REFUSED]
    if not refused:
        return None
    parts = "; ".join(f"{f.attachment.filename} ({f.why})" for f in refused)
    return f"I could not read {parts}."


def cap_text(text: str, *, max_chars: int) -> str:
    """``text`` up to ``max_chars`` characters, then a visible marker saying how much was left out."""
    if len(text) <= max_chars:
        return text
    return text[:max_chars] + CUT_MARKER.format(omitted=len(text) - max_chars)


def looks_like_image(attachment: Attachment) -> bool:
    return attachment.content_type.startswith("image/") or attachment.filename.lower().endswith(IMAGE_EXTENSIONS)


async def read_files(
    attachments: tuple[Attachment, ...], *, vision: bool, limits: AttachmentLimits, policy: FetchPolicy
) -> list[ReadFile]:
    """Read a message's attachments concurrently, in order; every outcome is logged with its reason."""
    if not attachments:
        return []
    downloads = Downloader(policy=policy, max_bytes=limits.max_download_bytes, timeout_s=limits.download_timeout_s)
    async with downloads as http:
        read = await asyncio.gather(*(_read(a, http=http, vision=vision, limits=limits) for a in attachments))
    for file in read:
        how = f"{file.use}" + (f" ({file.why})" if file.why else "")
        level = logging.WARNING if file.use == Use.REFUSED else logging.INFO
        log.log(
            level,
            "attachment %s (%s, %d bytes): %s",
            file.attachment.filename,
            file.attachment.content_type,
            file.attachment.size_bytes,
            how,
        )
    return list(read)


async def _read(attachment: Attachment, *, http: Downloader, vision: bool, limits: AttachmentLimits) -> ReadFile:
    if attachment.unreadable is not None:
        return ReadFile(attachment, Use.REFUSED, attachment.unreadable)
    if not vision and looks_like_image(attachment):
        return ReadFile(attachment, Use.NOTED, "this model cannot see images")
    if attachment.size_bytes > limits.max_download_bytes:
        return ReadFile(attachment, Use.REFUSED, _too_large(limits))
    if attachment.source is None:
        return ReadFile(attachment, Use.NOTED, "the platform gave no link to download it")
    off_host = http.why_not(attachment.source)
    if off_host is not None:
        return ReadFile(attachment, Use.NOTED, off_host)
    try:
        data = await http.download(attachment.source, html_expected=attachment.content_type == "text/html")
        return await asyncio.to_thread(_interpret, attachment, data, vision, limits)
    except Refused as exc:
        return ReadFile(attachment, Use.REFUSED, str(exc))
    except Exception:  # a library's surprise on a hostile file: the file is refused, the turn goes on
        log.exception("reading attachment %s failed", attachment.filename)
        return ReadFile(attachment, Use.REFUSED, "it could not be read")


def _too_large(limits: AttachmentLimits) -> str:
    return too_large(limits.max_download_bytes)


# -- what the bytes are (run on a worker thread: decoding and resizing are CPU work) --------------------------


def _interpret(attachment: Attachment, data: bytes, vision: bool, limits: AttachmentLimits) -> ReadFile:
    sized = Attachment(attachment.filename, attachment.content_type, len(data))
    if data.startswith(b"%PDF-"):
        typed = _retyped(sized, "application/pdf")
        pdf_text = _pdf_text(data, limits=limits)
        if not pdf_text.strip():
            return ReadFile(typed, Use.NOTED, "the PDF has no text layer (a scan?)")
        return ReadFile(typed, Use.INLINED, text=cap_text(pdf_text, max_chars=limits.max_text_chars))
    text = _as_text(data)
    if text is not None:
        kind = sized.content_type if sized.content_type.startswith("text/") else "text/plain"
        return ReadFile(_retyped(sized, kind), Use.INLINED, text=cap_text(text, max_chars=limits.max_text_chars))
    if looks_like_image(sized) or _opens_as_image(data):
        if not vision:
            return ReadFile(sized, Use.NOTED, "this model cannot see images")
        original, image = _image_part(data, limits=limits)
        return ReadFile(_retyped(sized, original), Use.IMAGE, image=image)
    return ReadFile(sized, Use.NOTED, "not a text, PDF or image file")


def _retyped(attachment: Attachment, content_type: str) -> Attachment:
    return Attachment(attachment.filename, content_type, attachment.size_bytes)


def _as_text(data: bytes) -> str | None:
    """The bytes as text when they are text: UTF-8 (with or without a BOM) or UTF-16 with a BOM."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def _opens_as_image(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)):
            return True
    except (UnidentifiedImageError, OSError, ValueError):
        return False


def _image_part(data: bytes, *, limits: AttachmentLimits) -> tuple[str, ImagePart]:
    """The file's real image type, and the verified image to send: at most ``image_max_side_px`` a side and
    ``image_max_bytes`` long."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.width * probe.height > limits.image_max_pixels:
                raise Refused(f"the image is too large ({probe.width}×{probe.height} pixels)")
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            original = Image.MIME.get(image.format or "", "image/" + (image.format or "unknown").lower())
            mime = SENT_IMAGE_FORMATS.get(image.format or "")
            fits = max(image.size) <= limits.image_max_side_px and len(data) <= limits.image_max_bytes
            if mime is not None and fits and not getattr(image, "is_animated", False):
                return original, ImagePart(mime=mime, data=data, width=image.width, height=image.height)
            return original, _reencoded(image, limits=limits)
    except Refused:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise Refused("the image is damaged or not an image") from None


def _reencoded(image: Image.Image, *, limits: AttachmentLimits) -> ImagePart:
    """Shrink to the side limit and re-encode (PNG when it has transparency, else JPEG) until it fits."""
    frame = image.copy()
    side = limits.image_max_side_px
    for _ in range(4):
        frame.thumbnail((side, side))
        alpha = frame.mode in ("RGBA", "LA", "PA") or "transparency" in frame.info
        out = io.BytesIO()
        if alpha:
            frame.convert("RGBA").save(out, format="PNG", optimize=True)
        else:
            frame.convert("RGB").save(out, format="JPEG", quality=JPEG_QUALITY)
        if out.tell() <= limits.image_max_bytes:
            mime = "image/png" if alpha else "image/jpeg"
            return ImagePart(mime=mime, data=out.getvalue(), width=frame.width, height=frame.height)
        side //= 2
    raise Refused("the image is too large even when shrunk")


def _pdf_text(data: bytes, *, limits: AttachmentLimits) -> str:
    # pypdf's import costs about 50 ms: paid by the first PDF (on this worker thread), not by every start-up (P3)
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise Refused("the PDF is password-protected")
        pages = reader.pages[: limits.max_pdf_pages]
        text = "\n\n".join(page.extract_text() or "" for page in pages)
        if len(reader.pages) > limits.max_pdf_pages:
            text += f"\n[… only the first {limits.max_pdf_pages} of {len(reader.pages)} pages were read …]"
        return text
    except Refused:
        raise
    except (PdfReadError, PyPdfError, ValueError, KeyError, OSError):
        raise Refused("the PDF is damaged") from None
    except Exception as exc:  # pypdf raises assorted errors on hostile files; none may crash a turn
        if "password" in str(exc).lower() or "decrypt" in str(exc).lower():
            raise Refused("the PDF is password-protected") from None
        log.warning("pypdf could not read a PDF: %s", type(exc).__name__)
        raise Refused("the PDF is damaged") from None
