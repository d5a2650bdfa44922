"""Who may talk to the bot on Slack: small composable checks over the allowlists.

Each check answers one question about an event; the adapter asks all of them. An empty allowlist allows
everyone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bots.config import Settings


@dataclass(frozen=True, slots=True)
class Origin:
    team: str
    channel: str
    user: str


Check = Callable[[Origin], bool]


def _allowed(allowlist: frozenset[str], value: str) -> bool:
    return not allowlist or value in allowlist


def checks_from(settings: Settings) -> list[Check]:
    return [
        lambda o: _allowed(settings.slack_allowed_teams, o.team),
        lambda o: _allowed(settings.slack_allowed_channels, o.channel),
        lambda o: _allowed(settings.slack_allowed_users, o.user),
    ]


def is_allowed(origin: Origin, checks: list[Check]) -> bool:
    return all(check(origin) for check in checks)
