"""Logging set-up with secret redaction and control characters escaped.

Every record is scrubbed before any handler formats it (``bots/operator/redaction.py`` says what a secret is: the
configured tokens and keys, every provider credential in the environment, and credentials inside URLs), so a
library that logs a URL, a header or a provider's error text with a key in it cannot leak it. Both formats
then write one record as one line (plus its traceback), whatever user text it holds (``bots/operator/log_escape.py``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from bots.config import ConfigError
from bots.operator.log_context import ContextFilter, JsonFormatter
from bots.operator.log_escape import TextFormatter, format_exception
from bots.operator.redaction import REDACTED, Redactor

__all__ = ["REDACTED", "RedactSecrets", "configure_logging", "log_handler"]


class RedactSecrets(logging.Filter):
    """Scrub a record's message, arguments, traceback and stack."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._redact = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redact(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = format_exception(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True


def log_handler(stream: TextIO, *, secrets: Iterable[str], log_format: str = "text") -> logging.Handler:
    """The handler every log line goes through: secrets redacted, context fields added, text or JSON lines."""
    return _dressed(logging.StreamHandler(stream), secrets=secrets, log_format=log_format)


def configure_logging(
    *, secrets: Iterable[str], level: str, log_format: str = "text", path: Path | None = None
) -> None:
    """Log to stderr, or append to ``path`` (LOG_FILE), at ``level`` as text or JSON lines, secrets redacted.

    A new file is created readable by this user only: log lines can quote file names and model errors.
    """
    if path is None:
        handler = log_handler(sys.stderr, secrets=secrets, log_format=log_format)
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600, exist_ok=True)
            file = logging.FileHandler(path, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"LOG_FILE={path} cannot be written ({exc.strerror or exc}). Set it to a file this user may "
                "write, or leave it unset to log to stderr."
            ) from None
        handler = _dressed(file, secrets=secrets, log_format=log_format)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "discord.gateway"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _dressed(handler: logging.Handler, *, secrets: Iterable[str], log_format: str) -> logging.Handler:
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RedactSecrets(secrets))
    handler.addFilter(ContextFilter())
    return handler
