"""Logging set-up with secret redaction.

Every configured secret (tokens, signing secret, API key) is replaced by ``[redacted]`` in every record before
any handler formats it, so a library that logs a URL or header with a token in it cannot leak it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from bots.log_context import ContextFilter, JsonFormatter

REDACTED = "[redacted]"


class RedactSecrets(logging.Filter):
    """Replace known secret values in a record's message and arguments."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def _clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            record.msg = self._clean(record.getMessage())
            record.args = None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = self._clean(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
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
