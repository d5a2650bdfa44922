"""Tool-call arguments in Block Kit: the approval card's summary section and the answer to "Show all".

Slack caps a section's text at 3,000 characters and a message at 50 blocks, and its escaping (``&``, ``<``,
``>``) lengthens text, so every size here is measured after escaping. The card's summary comes from
``bots/tools/approval_arguments.py`` already fitted to one section. "Show all" answers the clicker alone
(``chat.postEphemeral``) with the full arguments as code, split over as many sections as needed, at line breaks
where it can; arguments longer than a whole message (about 140,000 characters) end with a line saying how much
is left off.
"""

from __future__ import annotations

from typing import Any

from bots.seam.ports import FullArguments
from bots.slack.mrkdwn import escape
from bots.tools.approval_arguments import ArgumentSummary, argument_summary, break_fences

SECTION_LIMIT = 3000
MAX_BLOCKS = 50
FENCE = "```"


def _escaped_length(text: str) -> int:
    return len(escape(text))


def summary_section(arguments_json: str) -> tuple[dict[str, Any], ArgumentSummary]:
    """The card's argument lines as one code section, and the summary (it says whether anything is cut)."""
    summary = argument_summary(arguments_json, limit=SECTION_LIMIT - 2 * len(FENCE), cost=_escaped_length)
    return _code_section(summary.text), summary


def full_arguments_blocks(shown: FullArguments) -> list[dict[str, Any]]:
    """The full arguments for "Show all": an intro, then code sections, at most 50 blocks in all."""
    intro = {"type": "section", "text": {"type": "mrkdwn", "text": f"The full arguments of `{escape(shown.tool)}`:"}}
    pieces = code_pieces(break_fences(shown.text), limit=SECTION_LIMIT - 2 * len(FENCE))
    room = MAX_BLOCKS - 1
    if len(pieces) <= room:
        return [intro, *(_code_section(piece) for piece in pieces)]
    kept = pieces[: room - 1]
    left = len(shown.text) - sum(len(piece) for piece in kept)
    note = f"… {left:,} more characters are left off: more than one Slack message holds."
    return [intro, *(_code_section(piece) for piece in kept), {"type": "context", "elements": [_mrkdwn(note)]}]


def code_pieces(text: str, *, limit: int) -> list[str]:
    """``text`` in pieces whose escaped length is at most ``limit``, cut after a line break where one is near."""
    pieces: list[str] = []
    rest = text
    while rest:
        cut = _longest_fitting(rest, limit)
        if cut < len(rest):
            line_break = rest.rfind("\n", 0, cut)
            cut = line_break + 1 if line_break >= cut // 2 else cut
        pieces.append(rest[:cut])
        rest = rest[cut:]
    return pieces


def _longest_fitting(text: str, limit: int) -> int:
    """How many leading characters of ``text`` escape to at most ``limit`` characters (at least one)."""
    used = 0
    for index, char in enumerate(text):
        used += _escaped_length(char)
        if used > limit:
            return max(1, index)
    return len(text)


def _code_section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": f"{FENCE}{escape(text)}{FENCE}"}}


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}
