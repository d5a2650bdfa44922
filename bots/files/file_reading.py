"""What a file's bytes are, worked out inside the reading box (``bots/files/reading_box.py``), never in the bot.

This module is what a reading worker runs: a separate ``python -I`` process with no tokens in its environment,
a memory ceiling (``RLIMIT_AS``) and a CPU backstop, killed by the bot when a file takes longer than its
budget. It imports only the standard library and Pillow (pypdf on the first PDF), so a worker starts in tens
of milliseconds, and it never imports the rest of the bot.

What a file becomes is decided by its bytes, not by its name or claimed type:

- a PDF (``%PDF-``) has its text extracted by pypdf; a password-protected one is refused;
- anything that decodes as text is inlined, capped with a visible marker;
- an image (Pillow opens and verifies it) is sent as is when it fits, else shrunk and re-encoded; its decoded
  size is checked before any pixel is decoded, and a large JPEG is decoded at a reduced scale;
- anything else is noted by name.

The wire: each way, one frame per file: two big-endian 32-bit lengths, a JSON header, then raw bytes (the
file going in, the image to send coming out). Nothing is pickled: a worker subverted by a hostile file can
only send data, which the bot validates.
"""

from __future__ import annotations

import io
import json
import logging
import os
import resource
import signal
import struct
import sys
import warnings
from dataclasses import asdict, dataclass
from typing import BinaryIO, Literal

from PIL import Image, UnidentifiedImageError

FRAME = struct.Struct(">II")  # header length, payload length
SENT_IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
CUT_MARKER = "\n[… file cut here: {omitted:,} more characters not shown …]"
JPEG_QUALITY = 85
CPU_SLACK_S = 2  # the worker's own CPU limit trails the bot's budget: it only matters if the bot is gone
TOO_MUCH_MEMORY = "it needs too much memory to read"


class NotReadable(Exception):
    """A file the worker will not use; the message is the short reason people and the model are told."""


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One file to read: what the platform claimed, and the limits (``AttachmentLimits``) that apply."""

    content_type: str
    named_image: bool  # its name or claimed type says image: try it as one even if Pillow's sniffing fails
    vision: bool
    max_text_chars: int
    max_pdf_pages: int
    image_max_side_px: int
    image_max_bytes: int
    image_max_pixels: int
    image_max_decoded_bytes: int
    cpu_budget_s: float

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()


@dataclass(frozen=True, slots=True)
class Reading:
    """What a file became. ``content_type`` None: as the platform claimed. The image's bytes follow the header."""

    use: Literal["inlined", "image", "noted", "refused"]
    content_type: str | None = None
    why: str | None = None
    text: str | None = None
    image_mime: str | None = None
    image_width: int = 0
    image_height: int = 0
    error: str | None = None  # the exception's type when reading failed unexpectedly: for the bot's log

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()


def cap_text(text: str, *, max_chars: int) -> str:
    """``text`` up to ``max_chars`` characters, then a visible marker saying how much was left out."""
    if len(text) <= max_chars:
        return text
    return text[:max_chars] + CUT_MARKER.format(omitted=len(text) - max_chars)


def interpret(request: ReadRequest, data: bytes) -> tuple[Reading, bytes]:
    """What ``data`` is and what to send of it; a bad file is a ``refused`` reading, never an exception."""
    try:
        if data.startswith(b"%PDF-"):
            pdf_text = _pdf_text(data, request)
            if not pdf_text.strip():
                return Reading("noted", "application/pdf", why="the PDF has no text layer (a scan?)"), b""
            capped = cap_text(pdf_text, max_chars=request.max_text_chars)
            return Reading("inlined", "application/pdf", text=capped), b""
        text = _as_text(data)
        if text is not None:
            kind = request.content_type if request.content_type.startswith("text/") else "text/plain"
            return Reading("inlined", kind, text=cap_text(text, max_chars=request.max_text_chars)), b""
        if request.named_image or _opens_as_image(data):
            if not request.vision:
                return Reading("noted", why="this model cannot see images"), b""
            original, sent, width, height, mime = _image(data, request)
            return Reading("image", original, image_mime=mime, image_width=width, image_height=height), sent
        return Reading("noted", why="not a text, PDF or image file"), b""
    except NotReadable as exc:
        return Reading("refused", why=str(exc)), b""


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
    except Image.DecompressionBombError:  # an image, and a huge one: refused as such
        return True
    except (UnidentifiedImageError, OSError, ValueError):
        return False


def _image(data: bytes, request: ReadRequest) -> tuple[str, bytes, int, int, str]:
    """The file's real image type, and the verified image to send (bytes, width, height, type): at most
    ``image_max_side_px`` a side and ``image_max_bytes`` long."""
    side = request.image_max_side_px
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.width * probe.height > request.image_max_pixels:
                raise NotReadable(f"the image is too large ({probe.width}×{probe.height} pixels)")
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            original = Image.MIME.get(image.format or "", "image/" + (image.format or "unknown").lower())
            mime = SENT_IMAGE_FORMATS.get(image.format or "")
            fits = max(image.size) <= side and len(data) <= request.image_max_bytes
            if not fits:
                image.draft(None, (side, side))  # a JPEG decodes at 1/2, 1/4 or 1/8 scale: less memory and time
            if _decoded_bytes(image) > request.image_max_decoded_bytes:
                raise NotReadable(f"the image is too large ({image.width}×{image.height} pixels)")
            image.load()
            if mime is not None and fits and not getattr(image, "is_animated", False):
                return original, data, image.width, image.height, mime
            return (original, *_reencoded(image, request))
    except NotReadable:
        raise
    except Image.DecompressionBombError:  # Pillow's own guard, far above image_max_pixels
        raise NotReadable("the image is too large") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise NotReadable("the image is damaged or not an image") from None


def _decoded_bytes(image: Image.Image) -> int:
    """What decoding costs: Pillow keeps one byte a pixel for 1, L and P images, four for everything else."""
    return image.width * image.height * (1 if image.mode in ("1", "L", "P") else 4)


def _reencoded(image: Image.Image, request: ReadRequest) -> tuple[bytes, int, int, str]:
    """Shrink to the side limit and re-encode (PNG when it has transparency, else JPEG) until it fits."""
    frame = image  # shrunk in place: a copy would double the decoded image's memory
    side = request.image_max_side_px
    for _ in range(4):
        frame.thumbnail((side, side))
        alpha = frame.mode in ("RGBA", "LA", "PA") or "transparency" in frame.info
        out = io.BytesIO()
        if alpha:
            frame.convert("RGBA").save(out, format="PNG", optimize=True)
        else:
            frame.convert("RGB").save(out, format="JPEG", quality=JPEG_QUALITY)
        if out.tell() <= request.image_max_bytes:
            return out.getvalue(), frame.width, frame.height, "image/png" if alpha else "image/jpeg"
        side //= 2
    raise NotReadable("the image is too large even when shrunk")


def _pdf_text(data: bytes, request: ReadRequest) -> str:
    # pypdf's import costs about 50 ms: paid by a worker's first PDF, never by the bot's start-up (P3)
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise NotReadable("the PDF is password-protected")
        pages = reader.pages[: request.max_pdf_pages]
        text = "\n\n".join(page.extract_text() or "" for page in pages)
        if len(reader.pages) > request.max_pdf_pages:
            text += f"\n[… only the first {request.max_pdf_pages} of {len(reader.pages)} pages were read …]"
        return text
    except (NotReadable, MemoryError):
        raise
    except (PdfReadError, PyPdfError, ValueError, KeyError, OSError):
        raise NotReadable("the PDF is damaged") from None
    except Exception as exc:  # pypdf raises assorted errors on hostile files
        if "password" in str(exc).lower() or "decrypt" in str(exc).lower():
            raise NotReadable("the PDF is password-protected") from None
        raise NotReadable("the PDF is damaged") from None


# -- the worker process ---------------------------------------------------------------------------------------


def read_frame(stream: BinaryIO) -> tuple[bytes, bytes] | None:
    """One frame from ``stream``; None at its end."""
    lengths = stream.read(FRAME.size)
    if len(lengths) < FRAME.size:
        return None
    header_len, payload_len = FRAME.unpack(lengths)
    header, payload = stream.read(header_len), stream.read(payload_len)
    if len(header) < header_len or len(payload) < payload_len:
        return None
    return header, payload


def frame(header: bytes, payload: bytes) -> bytes:
    return FRAME.pack(len(header), len(payload)) + header + payload


def serve() -> None:
    """A worker's life: ``python -I -c … ROOT MEMORY_BYTES``; one reply per request until stdin closes."""
    memory = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # stopping is the bot's decision, by closing the pipe
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)  # pypdf's complaints about hostile files are not worth a log line
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print goes to stderr, never into the replies
    requests = sys.stdin.buffer
    while (request := read_frame(requests)) is not None:
        header, data = request
        reading, payload = _answer(ReadRequest(**json.loads(header)), data)
        replies.write(frame(reading.encode(), payload))
        replies.flush()


def _answer(request: ReadRequest, data: bytes) -> tuple[Reading, bytes]:
    _limit_cpu(request.cpu_budget_s)
    try:
        return interpret(request, data)
    except MemoryError:
        return Reading("refused", why=TOO_MUCH_MEMORY, error="MemoryError"), b""
    except Exception as exc:  # a library's surprise on a hostile file: refused, the worker lives on
        return Reading("refused", why="it could not be read", error=type(exc).__name__), b""


def _limit_cpu(budget_s: float) -> None:
    """A backstop for a worker whose bot is gone: the kernel ends it a little after this file's budget."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime + budget_s) + CPU_SLACK_S
    resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.getrlimit(resource.RLIMIT_CPU)[1]))
