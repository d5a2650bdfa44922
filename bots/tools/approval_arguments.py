"""A tool call's arguments on an approval card: every key shown, each long value cut on its own.

The person deciding must see what the call would do. One long argument (a file's ``content``) must not push
another (its ``path``) off the card, so the card shows one line per argument, in the tool's schema order (the
order of ``input_schema["properties"]``, then any keys the schema does not name), and cuts each long value by
itself with a marker saying how much is hidden. When the lines do not fit the platform's limit, the values are
cut shorter first; only if even the shortest cut cannot show every key are the last keys left off, and a line
says how many. The full arguments stay one click away ("Show all", answered privately) and in the export.

Arguments are model output: every key and value is shown JSON-encoded (a newline is ``\\n``, never a line
break), invisible and direction-changing characters are escaped, and code fences are broken, so an argument can
neither fake another line, nor close the card's code block, nor become markup. Adapters still show the lines as
code and escape what their platform needs (``cost`` tells this module how long that makes a text).

The approval row keeps the full arguments as JSON in schema order (:func:`ordered_arguments`); the card is
rendered from them each time it is shown, so an edit after a decision shows the same lines.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

VALUE_CHARS = 400  # the most of one value a card shows
MIN_VALUE_CHARS = 24  # values are cut no shorter than this before keys are left off
KEY_CHARS = 60
_BACKTICK_PAIR = re.compile(r"`(?=`)")  # a zero-width space goes between any two backticks: no fence can form
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.-]{1,60}")
# Control, invisible, line-separating and bidirectional characters: escaped so a key cannot hide or reorder text.
_INVISIBLE = re.compile("[\u0000-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


@dataclass(frozen=True, slots=True)
class ArgumentSummary:
    """The card's argument lines (to be shown as code) and whether they show everything."""

    text: str
    complete: bool


def ordered_arguments(arguments: Mapping[str, Any], raw_arguments: str, schema: Mapping[str, Any] | None) -> str:
    """The call's arguments as JSON, keys in ``schema``'s property order then the rest; the raw text if unparsed."""
    if not arguments and raw_arguments.strip() not in ("", "{}"):
        return raw_arguments  # not a JSON object: shown as the model sent it
    properties = (schema or {}).get("properties")
    named = [k for k in properties if k in arguments] if isinstance(properties, Mapping) else []
    order = named + [k for k in arguments if k not in named]
    try:
        return json.dumps({k: arguments[k] for k in order}, ensure_ascii=False)
    except (TypeError, ValueError):
        return raw_arguments


def full_arguments(arguments_json: str) -> str:
    """The arguments for "Show all": indented JSON in the stored order, or the stored text as it is."""
    parsed = _parsed(arguments_json)
    return arguments_json if parsed is None else json.dumps(parsed, indent=2, ensure_ascii=False)


def argument_summary(arguments_json: str, *, limit: int, cost: Callable[[str], int] = len) -> ArgumentSummary:
    """One line per argument, at most ``limit`` as ``cost`` measures it (a platform's escaping, say)."""
    parsed = _parsed(arguments_json)
    if parsed is None and not arguments_json.strip():
        return ArgumentSummary("(no arguments)", complete=True)
    if parsed is None:  # not an object: one value, cut like any other
        text, cut = _shown(arguments_json, VALUE_CHARS)
        return _fit_single(text, cut=cut, limit=limit, cost=cost)
    if not parsed:
        return ArgumentSummary("(no arguments)", complete=True)
    pairs = [(_key(k), _encoded(v)) for k, v in parsed.items()]
    width = _widest_fitting(pairs, limit=limit, cost=cost)
    if width is not None:
        lines = [_line(key, value, width) for key, value in pairs]
        return ArgumentSummary("\n".join(text for text, _ in lines), complete=not any(cut for _, cut in lines))
    return _leading_lines(pairs, limit=limit, cost=cost)


def hidden_note(hidden: int) -> str:
    noun = "argument is" if hidden == 1 else "arguments are"
    return f"… {hidden:,} more {noun} not shown here; Show all has them."


def printable(text: str) -> str:
    """``text`` for a terminal: its line breaks kept, every other control or invisible character escaped."""
    return "\n".join(_INVISIBLE.sub(_escaped, line) for line in text.split("\n"))


def break_fences(text: str) -> str:
    """``text`` with a zero-width space between any two backticks, so no code fence can form in it."""
    return _BACKTICK_PAIR.sub("`\u200b", text)


def _parsed(arguments_json: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(arguments_json)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _key(key: str) -> str:
    shown = key if _PLAIN_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)
    return _safe(shown if len(shown) <= KEY_CHARS else shown[:KEY_CHARS] + "…")


def _encoded(value: Any) -> str:
    return _safe(json.dumps(value, ensure_ascii=False))


def _safe(text: str) -> str:
    escaped = _INVISIBLE.sub(_escaped, text)
    return break_fences(escaped)


def _escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _shown(value: str, width: int) -> tuple[str, bool]:
    """``value`` cut to ``width`` characters with a marker saying how many more there are."""
    if len(value) <= width:
        return value, False
    return f"{value[:width]}… (+{len(value) - width:,} chars)", True


def _line(key: str, value: str, width: int) -> tuple[str, bool]:
    shown, cut = _shown(value, width)
    return f"{key}: {shown}", cut or key.endswith("…")


def _widest_fitting(pairs: list[tuple[str, str]], *, limit: int, cost: Callable[[str], int]) -> int | None:
    """The largest value width in [MIN_VALUE_CHARS, VALUE_CHARS] at which every line fits; None if none does."""

    def fits(width: int) -> bool:
        return cost("\n".join(_line(k, v, width)[0] for k, v in pairs)) <= limit

    if not fits(MIN_VALUE_CHARS):
        return None
    low, high = MIN_VALUE_CHARS, VALUE_CHARS
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _leading_lines(pairs: list[tuple[str, str]], *, limit: int, cost: Callable[[str], int]) -> ArgumentSummary:
    """As many lines as fit at the shortest cut, then how many arguments are left off."""
    lines: list[str] = []
    for index, (key, value) in enumerate(pairs):
        line = _line(key, value, MIN_VALUE_CHARS)[0]
        trailer = hidden_note(len(pairs) - index - 1) if index + 1 < len(pairs) else ""
        candidate = "\n".join([*lines, line, trailer] if trailer else [*lines, line])
        if cost(candidate) > limit:
            break
        lines.append(line)
    lines.append(hidden_note(len(pairs) - len(lines)))
    return ArgumentSummary("\n".join(lines), complete=False)


def _fit_single(text: str, *, cut: bool, limit: int, cost: Callable[[str], int]) -> ArgumentSummary:
    safe = shown = _safe(text)
    kept = len(safe)
    while cost(shown) > limit and kept > 1:
        kept = max(1, kept - max(1, (cost(shown) - limit) // 5))  # an escaped character costs at most 5
        shown, cut = safe[:kept] + "…", True
    return ArgumentSummary(shown, complete=not cut)
