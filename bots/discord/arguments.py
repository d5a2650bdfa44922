"""The answer to "Show all" on Discord: a tool call's full arguments, in an ephemeral follow-up.

Arguments that fit one message (2,000 characters) as a code block come as one; anything longer, or holding a
code fence of its own, comes as an attached ``.json`` file, byte for byte what the model sent, so nothing has to
be cut, split or altered to be shown.
"""

from __future__ import annotations

import io
from typing import Any

import discord

from bots.replies.render import DISCORD_MESSAGE_CHARS
from bots.seam.ports import FullArguments


def full_arguments_reply(shown: FullArguments) -> dict[str, Any]:
    """The keyword arguments of ``followup.send`` (content, and a file when needed) for ``shown``."""
    intro = f"The full arguments of `{shown.tool}`"
    inline = f"{intro}:\n```json\n{shown.text}\n```"
    if len(inline) <= DISCORD_MESSAGE_CHARS and "```" not in shown.text:
        return {"content": inline}
    data = shown.text.encode()
    attached = discord.File(io.BytesIO(data), filename=f"arguments-{shown.approval_id}.json")
    return {"content": f"{intro} ({len(shown.text):,} characters) are in the attached file.", "file": attached}
