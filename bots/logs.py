"""Logging set-up with secret redaction.

Every record is scrubbed before any handler formats it (``bots/redaction.py`` says what a secret is: the
configured tokens and keys, every provider credential in the environment, and credentials inside URLs), so a
library that logs a URL, a header or a provider's error text with a key in it cannot leak it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from bots.log_context import ContextFilter, JsonFormatter
from bots.redaction import REDACTED, Redactor

__all__ = ["REDACTED", "RedactSecrets", "configure_logging"]


class RedactSecrets(logging.Filter):
    """Scrub a record's message, arguments, traceback and stack."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._redact = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redact(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True


def configure_logging(*, secrets: Iterable[str], level: str, log_format: str = "text") -> None:
    """Log to stderr at ``level`` (LOG_LEVEL) as text or JSON lines (LOG_FORMAT), secrets redacted."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "discord.gateway"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
