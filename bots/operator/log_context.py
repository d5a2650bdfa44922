"""Which thread, platform and event a log line is about, carried by a context variable; and LOG_FORMAT=json.

The router binds the thread key, platform and event id when a message or a click comes in (:func:`bind`).
asyncio copies the context into every task created afterwards, so the answering worker, the model client and
the storage calls it makes all log with the same fields, without passing them around. :class:`ContextFilter`
puts the fields on each record; :class:`JsonFormatter` writes one JSON object per line.

Secrets are redacted by ``bots.operator.logs.RedactSecrets`` before any formatter runs, this one included. A JSON line
stays one line whatever a message holds: ``json.dumps`` escapes C0 controls, :func:`json_line` the rest.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime

from bots.operator.log_escape import json_line
from bots.seam.messages import ThreadKey

FIELDS = ("thread", "platform", "event")

_fields: ContextVar[Mapping[str, str] | None] = ContextVar("threadkeeper_log_fields", default=None)


def bind(*, thread: ThreadKey | None = None, event: str | None = None) -> None:
    """Attach ``thread`` (its key and platform) and ``event`` to every log line of this task from now on."""
    fields = dict(_fields.get() or {})
    if thread is not None:
        fields["thread"] = f"{thread.platform}:{thread.workspace}:{thread.channel}:{thread.thread}"
        fields["platform"] = thread.platform
    if event is not None:
        fields["event"] = event
    _fields.set(fields)


def current() -> Mapping[str, str]:
    return _fields.get() or {}


class ContextFilter(logging.Filter):
    """Copy the bound fields onto each record (as attributes, for any formatter)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = current()
        for name in FIELDS:
            setattr(record, name, fields.get(name))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the bound fields, and any exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json_line(json.dumps(entry, ensure_ascii=False))
