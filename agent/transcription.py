"""Speech to text through litellm's transcription API (``litellm.atranscription``), for voice messages.

agent/ is the only package that imports litellm, so the call lives here behind a small port
(:class:`SpeechToText`); ``bots/files/voice.py`` downloads the audio and hands over its bytes, and never sees
litellm. The model is ``TRANSCRIPTION_MODEL`` (``openai/whisper-1``, ``groq/whisper-large-v3``, ...), reached
with the chat model's ``LLM_API_BASE`` / ``LLM_API_KEY`` when those are set: an OpenAI-compatible server that
serves chat usually serves ``/v1/audio/transcriptions`` too.

One try, no retries inside litellm (``max_retries=0``): the caller holds a time budget for the whole of it and a
voice message that cannot be transcribed is answered anyway, with a short note. A failure is one exception,
:class:`TranscriptionFailed`, whose message is the short reason; the provider's own words go to the log only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from agent.failures import FailureKind, setup_problem
from agent.litellm_import import litellm_module

log = logging.getLogger(__name__)

MAX_LOGGED_ERROR_CHARS = 300


class TranscriptionFailed(Exception):
    """The audio could not be transcribed; the message is the short reason people are told."""


class SpeechToText(Protocol):
    """What the files pipeline needs: the text spoken in some audio, or :class:`TranscriptionFailed`."""

    async def transcribe(self, *, audio: bytes, filename: str, content_type: str) -> str: ...


@dataclass(frozen=True, slots=True)
class TranscriptionConfig:
    model: str
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 60.0  # the HTTP call's own limit; the caller's budget is the one that counts


class LiteLLMSpeechToText:
    """:class:`SpeechToText` over ``litellm.atranscription`` for one configured model."""

    def __init__(self, config: TranscriptionConfig) -> None:
        self.config = config

    async def setup_problem(self) -> str | None:
        """The operator's fix when the model cannot work before any request (no provider, no key), else None."""
        problem = setup_problem(
            await litellm_module(), model=self.config.model, api_key=self.config.api_key, api_base=self.config.api_base
        )
        if problem is None:
            return None
        kind, fix = problem
        if kind is FailureKind.NOT_FOUND:
            return "it names no provider litellm knows: write it as provider/model, such as openai/whisper-1"
        return fix

    async def transcribe(self, *, audio: bytes, filename: str, content_type: str) -> str:
        litellm = await litellm_module()
        args: dict[str, object] = {
            "model": self.config.model,
            "file": (filename, audio, content_type),
            "timeout": self.config.timeout_s,
            "max_retries": 0,
        }
        if self.config.api_base:
            args["api_base"] = self.config.api_base
        if self.config.api_key:
            args["api_key"] = self.config.api_key
        try:
            response = await litellm.atranscription(**args)
        except Exception as exc:
            detail = str(exc)[:MAX_LOGGED_ERROR_CHARS]
            log.warning(
                "transcribing %s with %s failed: %s: %s", filename, self.config.model, type(exc).__name__, detail
            )
            raise TranscriptionFailed("the transcription service failed") from None
        text = getattr(response, "text", None)
        if not isinstance(text, str):
            log.warning("transcribing %s with %s returned no text", filename, self.config.model)
            raise TranscriptionFailed("the transcription service gave no text")
        return text
