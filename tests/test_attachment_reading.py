"""What a file's bytes become, whatever its name claims: the pipeline against a loopback file server."""

from __future__ import annotations

import io
import random
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from PIL import Image
from pypdf import PdfWriter

from bots.files.attachments import AttachmentLimits, ReadFile, Use, read_files
from bots.files.downloads import FetchPolicy
from bots.seam.messages import Attachment, FileSource
from tests.attachment_files import pdf, png
from tests.fakes.server import LoopbackServer


class Files:
    """A file server: name -> bytes, and the headers each request carried."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.headers: list[dict[str, str]] = []
        self.server = LoopbackServer()

    async def serve(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        return web.Response(body=self.data[request.match_info["name"]])

    def attachment(self, name: str, data: bytes, *, content_type: str = "application/octet-stream") -> Attachment:
        self.data[name] = data
        url = f"http://127.0.0.1:{self.server.port}/{name}"
        source = FileSource(url, {"Authorization": "Bearer xoxb-secret"}, platform="slack")
        return Attachment(name, content_type, len(data), source)


@pytest.fixture
async def files() -> AsyncIterator[Files]:
    served = Files()
    app = web.Application()
    app.router.add_get("/{name}", served.serve)
    await served.server.start(app)
    yield served
    await served.server.stop()


async def read_one(attachment: Attachment, *, vision: bool = True, **limits: int) -> ReadFile:
    policy = FetchPolicy.for_platforms(slack_api_url=attachment.source.url if attachment.source else None)  # its host
    [read] = await read_files((attachment,), vision=vision, limits=AttachmentLimits(**limits), policy=policy)  # type: ignore[arg-type]
    return read


def image_bytes(mode: str, size: tuple[int, int], fmt: str, **save: object) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, format=fmt, **save)
    return out.getvalue()


async def test_a_transparent_image_too_wide_is_shrunk_and_stays_png(files: Files) -> None:
    read = await read_one(files.attachment("logo", image_bytes("RGBA", (4000, 1000), "PNG")))
    assert read.use == Use.IMAGE and read.attachment.content_type == "image/png"
    assert read.image is not None and (read.image.mime, read.image.width, read.image.height) == ("image/png", 1568, 392)


async def test_an_image_too_heavy_in_bytes_is_re_encoded_smaller_until_it_fits(files: Files) -> None:
    noise = random.Random(7).randbytes(800 * 600 * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (800, 600), noise).save(out, format="PNG")
    read = await read_one(files.attachment("noise.png", out.getvalue()), image_max_bytes=200_000)
    assert read.use == Use.IMAGE and read.image is not None
    assert read.image.mime == "image/jpeg" and len(read.image.data) <= 200_000


async def test_an_animated_gif_sends_its_first_frame_and_a_pixel_bomb_is_refused_before_decoding(
    files: Files,
) -> None:
    frames = [Image.new("RGB", (40, 40), c) for c in ("red", "blue")]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    gif = await read_one(files.attachment("wave.gif", out.getvalue()))
    assert gif.attachment.content_type == "image/gif" and gif.image is not None and gif.image.mime == "image/jpeg"
    bomb = await read_one(files.attachment("bomb.png", png(3000, 3000)), image_max_pixels=1_000_000)
    assert (bomb.use, bomb.why) == (Use.REFUSED, "the image is too large (3000×3000 pixels)")


async def test_pdfs_a_long_one_read_to_the_page_limit_and_one_without_text_is_named(files: Files) -> None:
    writer = PdfWriter()
    for _ in range(3):
        writer.add_blank_page(width=100, height=100)
    blank = io.BytesIO()
    writer.write(blank)
    scan = await read_one(files.attachment("scan.pdf", blank.getvalue()))
    assert (scan.use, scan.why) == (Use.NOTED, "the PDF has no text layer (a scan?)")
    report = await read_one(files.attachment("r.bin", pdf("page text")), max_pdf_pages=1)
    assert report.use == Use.INLINED and report.attachment.content_type == "application/pdf"
    assert report.text == "page text"
    damaged = await read_one(files.attachment("bad.pdf", b"%PDF-1.7\n garbage"))
    assert (damaged.use, damaged.why) == (Use.REFUSED, "the PDF is damaged")


async def test_text_is_sniffed_by_its_bytes_and_binary_is_only_named(files: Files) -> None:
    utf16 = await read_one(files.attachment("win.txt", "héllo wörld".encode("utf-16")))
    assert (utf16.use, utf16.text) == (Use.INLINED, "héllo wörld")
    archive = await read_one(files.attachment("a.txt", b"PK\x03\x04\x00\x00binary"))  # named .txt, is a zip
    assert (archive.use, archive.why) == (Use.NOTED, "not a text, PDF or image file")
    assert files.headers[-1]["Authorization"] == "Bearer xoxb-secret"
    assert "xoxb-secret" not in repr(files.attachment("x", b"x"))  # the token stays out of every repr


async def test_an_image_for_a_model_without_vision_is_noted_and_never_fetched(files: Files) -> None:
    read = await read_one(files.attachment("photo.png", png(), content_type="image/png"), vision=False)
    assert (read.use, read.why) == (Use.NOTED, "this model cannot see images")
    assert files.headers == []
