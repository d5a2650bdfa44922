"""Markdown, as models write it, to Slack's mrkdwn.

Slack's dialect differs in a few visible places: ``*bold*`` (not ``**bold**``), ``_italic_``, ``~strike~``,
``<url|text>`` links, and no headings (they become bold lines). Code — fenced blocks and inline spans — is
never reformatted: nothing inside it is rewritten except the language tag of a fence, which Slack would show
as the block's first line. Slack's three control characters (``&``, ``<``, ``>``) are escaped everywhere,
code included (Slack shows the entities as the characters), so model output can never forge a mention, a
``<!channel>`` broadcast or a link.
"""

from __future__ import annotations

import re

_CODE = re.compile(r"(```.*?(?:```|$)|`[^`\n]+`)", re.DOTALL)
_FENCE_TAG = re.compile(r"^```[\w+#.-]*[ \t]*\n")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
_ITALIC = re.compile(r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
_BULLET = re.compile(r"^([ \t]*)[*-][ \t]+", re.MULTILINE)
_BOLD_MARK = "\x00"  # stands for Slack's "*" until italics have been converted


def escape(text: str) -> str:
    """Slack's three control characters, so text cannot forge a mention or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _convert_prose(text: str) -> str:
    text = escape(text)
    text = _LINK.sub(lambda m: f"<{m.group(2)}|{m.group(1)}>", text)
    text = _HEADING.sub(lambda m: f"{_BOLD_MARK}{m.group(1)}{_BOLD_MARK}", text)
    text = _BULLET.sub(lambda m: f"{m.group(1)}• ", text)
    text = _ITALIC.sub(lambda m: f"_{m.group(1)}_", text)
    text = _BOLD.sub(lambda m: f"{_BOLD_MARK}{m.group(1) or m.group(2)}{_BOLD_MARK}", text)
    text = _STRIKE.sub(lambda m: f"~{m.group(1)}~", text)
    return text.replace(_BOLD_MARK, "*")


def _convert_code(code: str) -> str:
    return escape(_FENCE_TAG.sub("```\n", code, count=1))


def to_mrkdwn(markdown: str) -> str:
    """Convert the prose between code spans; keep code as written (escaped, fence tags dropped)."""
    parts = _CODE.split(markdown.replace(_BOLD_MARK, ""))
    return "".join(_convert_code(part) if index % 2 else _convert_prose(part) for index, part in enumerate(parts))
