"""A failed Slack call in a few words, for the log: Slack's error code, else the kind of network error."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError


def reason_of(exc: Exception) -> str:
    """Slack's ``error`` code (or the HTTP status) of a refused call, else the exception's type."""
    if isinstance(exc, SlackApiError) and isinstance(exc.response.data, dict):
        return str(exc.response.data.get("error") or exc.response.status_code)
    return type(exc).__name__


def slack_error(exc: SlackApiError) -> str:
    """The ``error`` code of a failed Web API call, whatever the body was."""
    data = exc.response.data
    if isinstance(data, dict):
        return str(data.get("error") or "unknown_error")
    return f"HTTP {exc.response.status_code}"
