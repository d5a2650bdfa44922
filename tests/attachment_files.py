"""Real files for the attachment tests, made on the spot: images by Pillow, PDFs by pypdf (text, locked)."""

from __future__ import annotations

import io

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


def pdf(text: str, *, password: str | None = None) -> bytes:
    """A one-page PDF whose page shows ``text`` (extractable), optionally encrypted with ``password``."""
    writer = PdfWriter()
    page = writer.add_blank_page(width=612, height=792)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    resources = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
    )
    page[NameObject("/Resources")] = resources
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = DecodedStreamObject()
    stream.set_data(f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1"))
    page[NameObject("/Contents")] = writer._add_object(stream)
    if password is not None:
        writer.encrypt(password, algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
