"""Real files for the attachment tests, made on the spot: images by Pillow, PDFs by pypdf (text, locked)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject


def png(width: int = 64, height: int = 48, *, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()


def noisy_png(width: int, height: int) -> bytes:
    """A PNG that compresses badly, so it is large in bytes as well as in pixels."""
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), bytes((i * 7919) % 251 for i in range(width * height * 3))).save(
        out, format="PNG"
    )
    return out.getvalue()


def corrupt_png() -> bytes:
    """A PNG signature and header, then garbage: an image by its name and first bytes, broken inside."""
    return png()[:40] + b"\x00garbage\xff" * 50


def declared_png(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width``×``height`` RGB pixels but whose data holds one row: a few hundred
    bytes that would cost ``width * height * 4`` bytes to decode (made without allocating them here)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = zlib.compress(b"\x00" * (1 + 3 * width))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", row) + chunk(b"IEND", b"")


def pdf(text: str, *, password: str | None = None) -> bytes:
    """A one-page PDF whose page shows ``text`` (extractable), optionally encrypted with ``password``."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return _pdf(f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1"), password=password)


def slow_pdf(*, operators: int = 100_000, pages: int = 50) -> bytes:
    """A PDF of a few kilobytes that takes pypdf minutes: its pages share one compressed content stream of
    ``operators`` text-showing operators, and each page parses all of it (20,000 take about 0.25 s here)."""
    return _pdf(b"BT /F1 12 Tf 72 720 Td " + b"(a) Tj " * operators + b"ET", pages=pages, compress=True)


def _pdf(content: bytes, *, password: str | None = None, pages: int = 1, compress: bool = False) -> bytes:
    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    resources = DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})})
    stream = DecodedStreamObject()
    stream.set_data(content)
    contents = writer._add_object(stream.flate_encode() if compress else stream)
    for _ in range(pages):
        page = writer.add_blank_page(width=612, height=792)
        page[NameObject("/Resources")] = resources
        page[NameObject("/Contents")] = contents
    if password is not None:
        writer.encrypt(password, algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
