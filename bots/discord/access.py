"""Who may talk to the bot on Discord: small composable checks over the allowlists (empty allows all).

Each check looks at one fact of an :class:`Origin` (where a message or a click came from) and knows nothing of
the others, so a rule is added by adding a function, not by editing a handler. A DM has no guild, channel or
roles to check; so when any of those lists is set, only users named in DISCORD_ALLOWED_USERS may DM the bot
(otherwise restricting the bot to one server would still let any stranger talk to it privately).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import discord

from bots.config import Settings


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an event came from. ``guild`` is None in DMs; ``channel`` is a thread's parent channel."""

    guild: str | None
    channel: str
    user: str
    roles: frozenset[str]


Check = Callable[[Origin], bool]

NOT_AVAILABLE = "Sorry, I'm not available to you here. Ask a server admin if you think that's wrong."


def in_guilds(allowed: frozenset[str]) -> Check:
    return lambda o: not allowed or o.guild is None or o.guild in allowed


def in_channels(allowed: frozenset[str]) -> Check:
    return lambda o: not allowed or o.guild is None or o.channel in allowed


def has_role(allowed: frozenset[str]) -> Check:
    return lambda o: not allowed or o.guild is None or bool(o.roles & allowed)


def is_user(allowed: frozenset[str]) -> Check:
    return lambda o: not allowed or o.user in allowed


def dm_needs_named_user(*, server_lists_set: bool, users: frozenset[str]) -> Check:
    """In a DM the server-side lists cannot be checked: if any is set, the user must be named explicitly."""
    return lambda o: o.guild is not None or not server_lists_set or o.user in users


def checks_from(settings: Settings) -> list[Check]:
    guilds, channels = settings.discord_allowed_guilds, settings.discord_allowed_channels
    roles, users = settings.discord_allowed_roles, settings.discord_allowed_users
    return [
        in_guilds(guilds),
        in_channels(channels),
        has_role(roles),
        is_user(users),
        dm_needs_named_user(server_lists_set=bool(guilds or channels or roles), users=users),
    ]


def is_allowed(origin: Origin, checks: list[Check]) -> bool:
    return all(check(origin) for check in checks)


def _parent_id(channel: object) -> str:
    """A thread's parent channel id, else the channel's own id."""
    return str(getattr(channel, "parent_id", None) or getattr(channel, "id", ""))


def _role_ids(member: object) -> frozenset[str]:
    return frozenset(str(role.id) for role in getattr(member, "roles", []))


def origin_of_message(message: discord.Message) -> Origin:
    guild = str(message.guild.id) if message.guild else None
    return Origin(guild, _parent_id(message.channel), str(message.author.id), _role_ids(message.author))


def origin_of_click(interaction: discord.Interaction[Any]) -> Origin:
    guild = str(interaction.guild_id) if interaction.guild_id else None
    channel = _parent_id(interaction.channel) if interaction.channel else str(interaction.channel_id or "")
    return Origin(guild, channel, str(interaction.user.id), _role_ids(interaction.user))
