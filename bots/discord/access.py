"""Who may talk to the bot on Discord: small composable checks over the allowlists (empty allows all)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bots.config import Settings


@dataclass(frozen=True, slots=True)
class Origin:
    guild: str | None
    channel: str
    user: str
    roles: frozenset[str]


Check = Callable[[Origin], bool]


def checks_from(settings: Settings) -> list[Check]:
    guilds, channels = settings.discord_allowed_guilds, settings.discord_allowed_channels
    roles, users = settings.discord_allowed_roles, settings.discord_allowed_users
    return [
        lambda o: not guilds or o.guild is None or o.guild in guilds,
        lambda o: not channels or o.guild is None or o.channel in channels,
        lambda o: not roles or o.guild is None or bool(o.roles & roles),
        lambda o: not users or o.user in users,
    ]


def is_allowed(origin: Origin, checks: list[Check]) -> bool:
    return all(check(origin) for check in checks)
