"""Images as the model sees them: the vision check, the content parts, and what an image costs in tokens.

``agent/`` is the only litellm user, so whether a model can see images (litellm's model info) is asked here,
for the model a session actually uses, never read from settings. An image travels as an OpenAI-style
``image_url`` content part carrying a ``data:`` URL, inside the *user* message it was attached to: an image
is never system-side content, so nothing drawn or written in it can pose as an instruction from the operator.

Token counting: providers price an image by its size, not by the length of its base64 text, so a session
counts each image by OpenAI's published "high detail" rule (fit in 2048 px, shortest side at most 768 px,
then 170 tokens per 512 px tile plus 85). Other providers charge less or about the same for the sizes the
attachment pipeline sends, so the budget stays on the safe side.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from agent.litellm_import import litellm_module

log = logging.getLogger(__name__)

TILE_PX = 512
TOKENS_PER_TILE = 170
BASE_IMAGE_TOKENS = 85
FIT_PX = 2048
SHORT_SIDE_PX = 768
NO_VISION_NOTE = "[an image was attached here; this model cannot see images]"
LEFT_OUT_NOTE = "[{count} attached image(s) left out: together they were too large for my context window]"

_vision: dict[str, bool] = {}


@dataclass(frozen=True, slots=True)
class ImagePart:
    """One image ready to send: its bytes (already verified and sized by the bot) and its pixel size."""

    mime: str
    data: bytes = field(repr=False)
    width: int
    height: int

    @property
    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"

    @property
    def tokens(self) -> int:
        """What the image costs in the window (OpenAI's high-detail rule; see the module docstring)."""
        width, height = float(self.width), float(self.height)
        fit = min(1.0, FIT_PX / max(width, height, 1.0))
        width, height = width * fit, height * fit
        short = min(1.0, SHORT_SIDE_PX / max(min(width, height), 1.0))
        width, height = width * short, height * short
        tiles = math.ceil(width / TILE_PX) * math.ceil(height / TILE_PX)
        return BASE_IMAGE_TOKENS + TOKENS_PER_TILE * max(1, tiles)

    def content_part(self) -> dict[str, Any]:
        return {"type": "image_url", "image_url": {"url": self.data_url}}


def images_within(images: tuple[ImagePart, ...], *, room: int) -> tuple[tuple[ImagePart, ...], str | None]:
    """The first images that fit in ``room`` tokens, and a note naming how many were left out (None: none)."""
    kept: list[ImagePart] = []
    for image in images:
        if image.tokens > room:
            break
        kept.append(image)
        room -= image.tokens
    left_out = len(images) - len(kept)
    return tuple(kept), (LEFT_OUT_NOTE.format(count=left_out) if left_out else None)


def user_content(text: str, images: tuple[ImagePart, ...]) -> str | list[dict[str, Any]]:
    """A user message's content: plain text, or a text part followed by the message's image parts."""
    if not images:
        return text
    return [{"type": "text", "text": text}, *(image.content_part() for image in images)]


async def supports_vision(model: str) -> bool:
    """Whether ``model`` takes image input, by litellm's model info (unknown models: no). Cached per model."""
    known = _vision.get(model)
    if known is not None:
        return known
    litellm = await litellm_module()

    def lookup() -> bool:
        try:
            return bool(litellm.supports_vision(model=model))
        except Exception:
            return False

    seen = await asyncio.to_thread(lookup)  # an unknown model makes litellm try several lookups
    _vision[model] = seen
    log.debug("%s %s images", model, "sees" if seen else "does not see")
    return seen
