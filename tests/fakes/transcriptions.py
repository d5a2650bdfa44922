"""The fake model's speech-to-text endpoint: ``POST /v1/audio/transcriptions``, as OpenAI serves it.

litellm's ``atranscription(model="openai/<name>", api_base=fake.base_url)`` posts the audio as multipart form
data (``file``, ``model``, and whatever else the caller passes, e.g. ``response_format``). The fake records what
it received (the file's bytes and name, the model, the other fields) so tests assert that the bot sent the
audio it downloaded, and answers ``{"text": ...}``: a scripted transcript, else one derived from the bytes.
It can be told to fail (an HTTP status with an OpenAI-style error body) or to hang, once or always.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field

from aiohttp import BodyPartReader, web


@dataclass
class ReceivedAudio:
    """One transcription request as the fake saw it."""

    model: str
    filename: str
    data: bytes
    fields: dict[str, str] = field(default_factory=dict)
    status: int = 200


@dataclass
class FakeTranscriptions:
    """Scripted transcripts (FIFO, then ``transcript of N bytes``), faults, and a record of every request."""

    received: list[ReceivedAudio] = field(default_factory=list)
    _texts: deque[str] = field(default_factory=deque)
    _faults: deque[int | float] = field(default_factory=deque)  # an HTTP status (int) or seconds to hang (float)
    _always: int | None = None

    def reply(self, text: str) -> None:
        """The next transcription returns ``text``."""
        self._texts.append(text)

    def fail(self, status: int) -> None:
        """The next request gets this HTTP status."""
        self._faults.append(status)

    def fail_always(self, status: int) -> None:
        self._always = status

    def hang(self, seconds: float) -> None:
        """The next request is left unanswered for ``seconds`` (or until the client gives up)."""
        self._faults.append(float(seconds))

    def clear_faults(self) -> None:
        self._faults.clear()
        self._always = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/audio/transcriptions", self._handle)
        app.router.add_post("/audio/transcriptions", self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        received = await _read_form(request)
        self.received.append(received)
        fault = self._faults.popleft() if self._faults else self._always
        if isinstance(fault, float):
            await asyncio.sleep(fault)
            fault = 504
        if fault is not None:
            received.status = fault
            return _json({"error": {"message": f"fake transcription error {fault}", "type": "server_error",
                                    "param": None, "code": None}}, status=fault)  # fmt: skip
        text = self._texts.popleft() if self._texts else f"transcript of {len(received.data)} bytes"
        return _json({"text": text})


async def _read_form(request: web.Request) -> ReceivedAudio:
    received = ReceivedAudio(model="", filename="", data=b"")
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "file":
            received.filename = part.filename or ""
            received.data = bytes(await part.read())
        elif part.name == "model":
            received.model = await part.text()
        elif part.name:
            received.fields[part.name] = await part.text()
    return received


def _json(payload: dict[str, object], status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(payload), content_type="application/json")
