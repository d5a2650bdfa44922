"""Log lines that user text cannot forge: control characters in what is logged are written as escapes.

A file name, a message, a display name or a thread title is chosen by whoever writes in a thread. Written raw
into a text log, ``notes.txt\\n2026-… ERROR bots.tools.approvals: ADMIN approved …`` is two lines, the second one
forged; a carriage return or an ANSI sequence rewrites what a terminal shows, and a bidi override makes a
reader see characters in another order than they are. So the text format writes each such character the way
Python's ``repr`` does (``\\n``, ``\\x1b``, ``\\u202e``), in the whole rendered message, which holds every logged
value, and in an exception's own message. Its own structure, a traceback on the lines below, stays as it is.

The formatter does it, once, rather than each call site, so a ``log.info("… %s", filename)`` added tomorrow is
safe as well. Backslashes are left alone: a literal ``\\n`` typed by someone can look like an escape, but it can
never make a second line. The JSON format is one ``json.dumps`` per record, which escapes C0 controls itself;
:func:`json_line` escapes the rest (DEL, C1, the Unicode line and paragraph separators, bidi controls).

The same characters are a hazard wherever text that people or a model wrote reaches a terminal or a report:
:func:`terminal_safe` escapes them but keeps line breaks and tabs, for the console's answers and exports, where
lines are the text's own; a field that is one line by design (a name, a title) takes :func:`escape_controls`.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Iterator
from types import TracebackType

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]

LINE_AND_PARAGRAPH_SEPARATORS = (0x2028, 0x2029)
BIDI_CONTROLS = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
UNSAFE = (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), *LINE_AND_PARAGRAPH_SEPARATORS, *BIDI_CONTROLS)
_SHORT = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
_TEXT_ESCAPES = {cp: _SHORT.get(cp) or (f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}") for cp in UNSAFE}
# json.dumps already writes C0 as \u00XX; these are the ones it leaves raw with ensure_ascii=False.
_TERMINAL_ESCAPES = {cp: text for cp, text in _TEXT_ESCAPES.items() if cp not in (0x09, 0x0A)}
_JSON_ESCAPES = {cp: f"\\u{cp:04x}" for cp in UNSAFE if cp >= 0x7F}
_GROUP_MARGIN = re.compile(r" *(?:[|+] )?")  # how traceback indents the parts of an exception group


def escape_controls(text: str) -> str:
    """``text`` with every control, line-breaking and bidi character written as an escape: one line."""
    return text.translate(_TEXT_ESCAPES)


def terminal_safe(text: str) -> str:
    """``text`` with its line breaks and tabs, every other control, separator and bidi character escaped.

    An answer printed raw could carry ``ESC]52`` (write the clipboard), ``ESC[2J`` (clear the screen) or a
    carriage return that overwrites what the line said before it.
    """
    return text.translate(_TERMINAL_ESCAPES)


def json_line(serialized: str) -> str:
    """A ``json.dumps(..., ensure_ascii=False)`` result with the characters it leaves raw escaped.

    They can only stand inside JSON strings, where ``\\uXXXX`` is the same character: the value is unchanged.
    """
    return serialized.translate(_JSON_ESCAPES)


def format_exception(exc_info: ExcInfo) -> str:
    """A traceback as ``logging`` writes it, each exception's own message (chained, grouped) escaped."""
    exc_type, exc, tb = exc_info
    if exc_type is None or exc is None:
        return "NoneType: None"
    formatted = traceback.TracebackException(exc_type, exc, tb, compact=True)
    own = {chunk for part in _parts(formatted) for chunk in part.format_exception_only()}
    return "".join(_escape_own(chunk, own) for chunk in formatted.format()).removesuffix("\n")


def _parts(root: traceback.TracebackException) -> Iterator[traceback.TracebackException]:
    """Every exception a traceback shows: the one raised, its causes and contexts, a group's members."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        part = stack.pop()
        if id(part) in seen:
            continue
        seen.add(id(part))
        yield part
        stack.extend(p for p in (part.__cause__, part.__context__) if p is not None)
        stack.extend(part.exceptions or ())


def _escape_own(chunk: str, own: set[str]) -> str:
    """Escape ``chunk`` when it is an exception's message line (which may hold user text), group margin kept."""
    found = None if chunk in own else _GROUP_MARGIN.match(chunk)
    margin = found.group() if found else ""
    lines = chunk.splitlines(keepends=True)
    if not all(line.startswith(margin) for line in lines):
        return chunk
    bare = "".join(line[len(margin) :] for line in lines)
    if bare not in own or not bare.endswith("\n"):
        return chunk
    return margin + escape_controls(bare[:-1]) + "\n"


class TextFormatter(logging.Formatter):
    """The text format (``time LEVEL logger: message``), one line per record plus its traceback."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: ExcInfo) -> str:
        return format_exception(ei)
