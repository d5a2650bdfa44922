"""Voice messages and audio files: downloaded like any file, then transcribed, and the transcript is their text.

With ``TRANSCRIPTION_MODEL`` set, an audio attachment (a Discord voice message, a Slack audio clip, any
``audio/*`` file or a file named like one) is downloaded through the one fetch policy (``bots/files/downloads.py``:
the platform's own hosts only, its token to its own host only) under the same size cap as every file, and its
bytes are handed to the speech-to-text port (``agent/transcription.py``, litellm) within a time budget. A
duration the platform states is checked before anything is downloaded. Nothing of the audio is parsed here:
the bytes go to the provider as they came.

The transcript becomes the message's text for the model, after :data:`SPOKEN_PREFIX`, inside the user's own
message (it is their words, never an instruction from the bot), whitespace folded to single spaces so it
cannot open a line that reads like another speaker or a header. It is logged with the message
(``messages.transcript``): forgetting, export, ``search_thread`` and catch-up see it, and a deletion erases it.
A failure (too large, too long, the provider failed or took too long) is a short note in the thread ("I couldn't
transcribe the voice message (too long)."), a line for the model, and the reason in the log; the message is
answered with what there is. Without ``TRANSCRIPTION_MODEL`` audio is described by name, as any other file.

A voice message still waiting when the bot restarts (a deploy, a crash) lost its download link with the process:
the turn that answers it fetches the message again from its platform for a fresh one (``bots/files/refetching.py``)
and transcribes it then, as above.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from agent.transcription import SpeechToText, TranscriptionFailed
from bots.files.downloads import Downloader, Refused
from bots.seam.messages import Attachment

log = logging.getLogger(__name__)

SPOKEN_PREFIX = "[voice message, transcribed]"
AUDIO_EXTENSIONS = (".ogg", ".oga", ".opus", ".mp3", ".m4a", ".wav", ".flac", ".aac", ".weba")
TOO_LONG = "too long"
TOO_SLOW = "it took too long"
NOTHING_HEARD = "nothing was said in it"


@dataclass(frozen=True, slots=True)
class Transcribed:
    """What became of one audio file: its transcript, or the short reason there is none."""

    transcript: str | None = None
    why: str | None = None


def is_audio(attachment: Attachment) -> bool:
    """Whether the file is audio to transcribe: a voice message, an ``audio/*`` type, or an audio file's name."""
    return (
        attachment.voice
        or attachment.content_type.lower().startswith("audio/")
        or attachment.filename.lower().endswith(AUDIO_EXTENSIONS)
    )


def spoken(transcript: str) -> str:
    """A transcript as the model and the export read it: marked as spoken."""
    return f"{SPOKEN_PREFIX} {transcript}"


def said(text: str, transcript: str | None) -> list[str]:
    """A message's text, then its audio's transcript marked as spoken; empty parts left out."""
    return [part for part in (text, spoken(transcript) if transcript else "") if part]


def transcript_of(transcripts: Sequence[str | None]) -> str | None:
    """A message's transcript from its audio files' (None when none was transcribed)."""
    kept = [t for t in transcripts if t]
    return "\n".join(kept) if kept else None


def unspoken_note(files: Sequence[tuple[Attachment, str]]) -> str | None:
    """The thread's short note about audio that could not be transcribed (file, reason), or None."""
    if not files:
        return None
    parts = "; ".join(
        f"{'the voice message' if a.voice or len(files) == 1 else a.filename} ({why})" for a, why in files
    )
    return f"I couldn't transcribe {parts}."


async def transcribe(
    attachment: Attachment,
    *,
    http: Downloader,
    speech: SpeechToText,
    max_seconds: float,
    budget_s: float,
    max_chars: int,
) -> Transcribed:
    """Download ``attachment`` (already admitted by the fetch policy) and transcribe it within ``budget_s``."""
    assert attachment.source is not None, "the caller names a file it cannot download"
    if attachment.duration_s is not None and attachment.duration_s > max_seconds:
        log.warning(
            "not transcribing %s: %g s is over the %g s limit", attachment.filename, attachment.duration_s, max_seconds
        )
        return Transcribed(why=TOO_LONG)
    try:
        audio = await http.download(attachment.source)
    except Refused as exc:
        return Transcribed(why=str(exc))
    try:
        async with asyncio.timeout(budget_s):
            text = await speech.transcribe(
                audio=audio, filename=attachment.filename, content_type=attachment.content_type
            )
    except TimeoutError:
        log.warning("transcribing %s took over %g s: given up", attachment.filename, budget_s)
        return Transcribed(why=TOO_SLOW)
    except TranscriptionFailed as exc:
        return Transcribed(why=str(exc))
    folded = " ".join(text.split())
    if not folded:
        return Transcribed(why=NOTHING_HEARD)
    if len(folded) > max_chars:
        folded = folded[:max_chars] + " […]"
    log.info("transcribed %s (%d bytes): %d characters", attachment.filename, len(audio), len(folded))
    return Transcribed(transcript=folded)
