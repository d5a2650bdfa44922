"""The allowlist checks on their own: each list alone, DMs, and the lists together."""

from __future__ import annotations

from bots.discord.access import Origin, checks_from, is_allowed
from tests.conftest import MakeSettings

IN_GUILD = Origin(guild="g1", channel="c1", user="u1", roles=frozenset({"r1"}))
IN_DM = Origin(guild=None, channel="dm1", user="u1", roles=frozenset())


def allowed(make_settings: MakeSettings, origin: Origin, **lists: frozenset[str]) -> bool:
    return is_allowed(origin, checks_from(make_settings(**lists)))


def test_empty_lists_allow_everyone_everywhere(make_settings: MakeSettings) -> None:
    assert allowed(make_settings, IN_GUILD) and allowed(make_settings, IN_DM)


def test_each_server_list_alone_decides_in_a_guild(make_settings: MakeSettings) -> None:
    assert allowed(make_settings, IN_GUILD, discord_allowed_guilds=frozenset({"g1"}))
    assert not allowed(make_settings, IN_GUILD, discord_allowed_guilds=frozenset({"g2"}))
    assert allowed(make_settings, IN_GUILD, discord_allowed_channels=frozenset({"c1"}))
    assert not allowed(make_settings, IN_GUILD, discord_allowed_channels=frozenset({"c2"}))
    assert allowed(make_settings, IN_GUILD, discord_allowed_roles=frozenset({"r1", "r9"}))
    assert not allowed(make_settings, IN_GUILD, discord_allowed_roles=frozenset({"r9"}))


def test_the_lists_combine_all_must_pass(make_settings: MakeSettings) -> None:
    lists = {"discord_allowed_guilds": frozenset({"g1"}), "discord_allowed_users": frozenset({"u2"})}
    assert not allowed(make_settings, IN_GUILD, **lists)


def test_a_server_restricted_bot_takes_dms_only_from_named_users(make_settings: MakeSettings) -> None:
    assert not allowed(make_settings, IN_DM, discord_allowed_guilds=frozenset({"g1"}))
    assert not allowed(make_settings, IN_DM, discord_allowed_roles=frozenset({"r1"}))
    assert allowed(
        make_settings, IN_DM, discord_allowed_guilds=frozenset({"g1"}), discord_allowed_users=frozenset({"u1"})
    )
    assert allowed(make_settings, IN_DM, discord_allowed_users=frozenset({"u1"}))
    assert not allowed(make_settings, IN_DM, discord_allowed_users=frozenset({"u2"}))
