"""Hostile files are read in the reading box: a slow PDF costs its budget, never the event loop's executor.

Real worker processes, real pypdf and Pillow, files from this machine's disk (``FileSource.local_path``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bots.files.attachments import AttachmentLimits, ReadFile, Use, read_files
from bots.files.downloads import FetchPolicy
from bots.files.reading_box import ReadingBox
from bots.seam.messages import Attachment, FileSource
from tests.attachment_files import declared_png, pdf, png, slow_pdf
from tests.fakes.waiting import wait_until

FAST = AttachmentLimits(read_budget_s=1.0, message_read_budget_s=2.5)
PLATFORMS_ONLY = FetchPolicy.for_platforms()  # these files are on disk: no host is asked
DNS_ANSWER_S = 1.0  # a lookup of localhost answers in milliseconds when the executor is free


@pytest.fixture
async def box() -> AsyncIterator[ReadingBox]:
    async with ReadingBox() as reading_box:
        yield reading_box


def on_disk(tmp_path: Path, name: str, data: bytes, content_type: str = "application/octet-stream") -> Attachment:
    path = tmp_path / name
    path.write_bytes(data)
    return Attachment(name, content_type, len(data), FileSource("", local_path=str(path)))


async def lookups_while(task: asyncio.Task[list[ReadFile]]) -> int:
    """Resolve localhost through the loop's executor, as aiohttp does, until ``task`` ends; each must answer."""
    loop, answered = asyncio.get_running_loop(), 0
    while not task.done():
        await asyncio.wait_for(loop.getaddrinfo("localhost", 443), DNS_ANSWER_S)
        answered += 1
        await asyncio.wait({task}, timeout=0.05)
    return answered


async def test_six_pdfs_that_would_take_minutes_are_refused_within_the_message_budget_while_dns_answers(
    tmp_path: Path,
) -> None:
    slow = slow_pdf()
    attachments = tuple(on_disk(tmp_path, f"slow{i}.pdf", slow, "application/pdf") for i in range(6))
    loop = asyncio.get_running_loop()
    started = loop.time()
    reading = asyncio.create_task(read_files(attachments, vision=True, limits=FAST, policy=PLATFORMS_ONLY))
    answered = await lookups_while(reading)
    elapsed = loop.time() - started
    read = reading.result()
    assert answered >= 5  # the lookups ran during the reading, each within DNS_ANSWER_S
    assert elapsed < FAST.message_read_budget_s + 2.0  # the message's budget, plus starting two workers
    assert [f.use for f in read] == [Use.REFUSED] * 6
    reasons = [f.why for f in read]
    assert set(reasons) == {"it took over 1 s to read", "its message's files took over 2.5 s to read"}
    assert reasons.count("its message's files took over 2.5 s to read") >= 2  # two workers, six files: no time


async def test_a_worker_over_budget_is_replaced_and_the_next_file_reads_normally(
    box: ReadingBox, tmp_path: Path
) -> None:
    [stuck] = await read_files(
        (on_disk(tmp_path, "slow.pdf", slow_pdf()),), vision=True, limits=FAST, policy=PLATFORMS_ONLY, box=box
    )
    assert (stuck.use, stuck.why) == (Use.REFUSED, "it took over 1 s to read")
    assert box.worker_pids == []  # killed, not left running on
    [report] = await read_files(
        (on_disk(tmp_path, "r.pdf", pdf("still here")),), vision=True, limits=FAST, policy=PLATFORMS_ONLY, box=box
    )
    assert (report.use, report.text) == (Use.INLINED, "still here")


async def test_an_image_bomb_is_refused_before_decoding_and_a_worker_out_of_memory_is_only_a_refusal(
    tmp_path: Path,
) -> None:
    bomb = on_disk(tmp_path, "bomb.png", declared_png(7000, 7000), "image/png")  # 49 MP: under the pixel cap
    async with ReadingBox(memory_bytes=256 * 1024 * 1024) as small:
        [refused] = await read_files((bomb,), vision=True, limits=AttachmentLimits(), policy=PLATFORMS_ONLY, box=small)
        assert (refused.use, refused.why) == (Use.REFUSED, "the image is too large (7000×7000 pixels)")
        uncapped = AttachmentLimits(image_max_decoded_bytes=10**12)  # then the worker's memory limit stops it
        [starved] = await read_files((bomb,), vision=True, limits=uncapped, policy=PLATFORMS_ONLY, box=small)
        assert (starved.use, starved.why) == (Use.REFUSED, "it needs too much memory to read")
        [fine] = await read_files(
            (on_disk(tmp_path, "ok.png", png()),), vision=True, limits=uncapped, policy=PLATFORMS_ONLY, box=small
        )
        assert fine.use == Use.IMAGE and fine.image is not None and fine.image.width == 64


async def test_a_large_jpeg_is_decoded_at_a_reduced_scale_and_sent_within_the_side_limit(
    box: ReadingBox, tmp_path: Path
) -> None:
    from PIL import Image

    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (3200, 3200), (10, 120, 200)).save(photo, format="JPEG")
    attachment = Attachment("photo.jpg", "image/jpeg", photo.stat().st_size, FileSource("", local_path=str(photo)))
    limits = AttachmentLimits(image_max_decoded_bytes=20_000_000)  # the full decode (41 MB) would be refused
    [read] = await read_files((attachment,), vision=True, limits=limits, policy=PLATFORMS_ONLY, box=box)
    assert read.use == Use.IMAGE and read.image is not None
    assert (read.image.mime, read.image.width, read.image.height) == ("image/jpeg", 1568, 1568)


async def test_workers_hold_none_of_the_bots_secrets_and_end_with_the_box(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "discord-secret")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret")
    async with ReadingBox() as box:
        [read] = await read_files(
            (on_disk(tmp_path, "a.txt", b"hello"),), vision=True, limits=FAST, policy=PLATFORMS_ONLY, box=box
        )
        assert read.text == "hello"
        [pid] = box.worker_pids
        assert environment_of(pid) == {"LC_ALL": "C.UTF-8"}
    assert _ended(pid)


async def test_a_turn_cancelled_mid_read_stops_its_worker(box: ReadingBox, tmp_path: Path) -> None:
    slow = on_disk(tmp_path, "slow.pdf", slow_pdf())
    reading = asyncio.create_task(
        read_files((slow,), vision=True, limits=AttachmentLimits(), policy=PLATFORMS_ONLY, box=box)
    )
    await wait_until(lambda: box.busy == 1, what="a worker reading the PDF")
    [pid] = box.worker_pids
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert box.worker_pids == [] and _ended(pid)


def environment_of(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return dict(entry.split("=", 1) for entry in entries if entry)


def _ended(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


LYING_WORKER = """
import json, sys
from bots.files.file_reading import frame, read_frame
while (request := read_frame(sys.stdin.buffer)) is not None:
    if request[1] == b"die":
        sys.exit(3)
    sys.stdout.buffer.write(frame(json.dumps({"use": "run this", "text": 1}).encode(), b""))
    sys.stdout.buffer.flush()
"""


async def test_a_worker_that_answers_nonsense_or_dies_costs_only_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boot = "import sys; sys.path.insert(0, sys.argv[1]); exec(" + repr(LYING_WORKER) + ")"
    monkeypatch.setattr("bots.files.reading_box._BOOT", boot)  # a parser subverted by a hostile file
    async with ReadingBox() as box:
        nonsense, died = await read_files(
            (on_disk(tmp_path, "a.txt", b"hello"), on_disk(tmp_path, "b.txt", b"die")),
            vision=True,
            limits=FAST,
            policy=PLATFORMS_ONLY,
            box=box,
        )
        assert box.worker_pids == []  # neither the liar nor the dead one is kept for the next file
    assert (nonsense.use, nonsense.why) == (Use.REFUSED, "it could not be read")
    assert (died.use, died.why) == (Use.REFUSED, "it could not be read")
