"""Markdown, as models write it, to Slack's mrkdwn.

Slack's dialect differs in a few visible places: ``*bold*`` (not ``**bold**``), ``_italic_``, ``~strike~``,
``<url|text>`` links, and no headings. Code (fenced blocks and inline spans) is left exactly as written, so
nothing inside it is rewritten.
"""

from __future__ import annotations

import re

_CODE = re.compile(r"(```.*?(?:```|$)|`[^`\n]+`)", re.DOTALL)
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
_ITALIC = re.compile(r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_BULLET = re.compile(r"^(\s*)[*-]\s+", re.MULTILINE)


def escape(text: str) -> str:
    """Slack's three control characters, so user text cannot forge a mention or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _convert_prose(text: str) -> str:
    text = escape(text)
    text = _LINK.sub(lambda m: f"<{m.group(2)}|{m.group(1)}>", text)
    text = _HEADING.sub(lambda m: f"\x00{m.group(1)}\x00", text)
    text = _BULLET.sub(lambda m: f"{m.group(1)}• ", text)
    text = _ITALIC.sub(lambda m: f"_{m.group(1)}_", text)
    text = _BOLD.sub(lambda m: f"\x00{m.group(1) or m.group(2)}\x00", text)
    text = _STRIKE.sub(lambda m: f"~{m.group(1)}~", text)
    return text.replace("\x00", "*")


def to_mrkdwn(markdown: str) -> str:
    """Convert prose between code spans; keep code verbatim."""
    parts = _CODE.split(markdown)
    return "".join(part if index % 2 else _convert_prose(part) for index, part in enumerate(parts))
