"""The contracts of the bot as installed and run: Slack installations and shared channels, OAuth states, the probe.

Apart from the conversation's stores because they belong to no thread: "Add to Slack" writes the installations
and consumes the states (``storage/installations.py``), and /readyz and the gauges ask the probe
(``storage.sql.ReadinessProbe``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from storage.records import SlackChannelKeeper, SlackInstallation


class SlackInstallations(Protocol):
    """Slack installations by (enterprise, team), tokens already encrypted; a delete scrubs the old bytes."""

    async def save(
        self,
        *,
        enterprise_id: str,
        team_id: str,
        team_name: str | None,
        bot_user_id: str | None,
        bot_scopes: str,
        details_json: str,
        tokens_ciphertext: str,
        now: datetime,
    ) -> None: ...

    async def find(self, *, enterprise_id: str, team_id: str) -> SlackInstallation | None: ...

    async def find_team(self, *, team_id: str) -> SlackInstallation | None: ...

    async def all(self) -> list[SlackInstallation]: ...

    async def claim_refresh(self, *, enterprise_id: str, team_id: str, tokens_ciphertext: str, hold_s: float) -> bool:
        """True for one caller at a time (per tokens, for ``hold_s`` seconds of the database's clock)."""
        ...

    async def replace_tokens(
        self,
        *,
        enterprise_id: str,
        team_id: str,
        was_ciphertext: str,
        details_json: str,
        tokens_ciphertext: str,
        now: datetime,
    ) -> bool:
        """Compare-and-swap: saved (True) only while the row still holds ``was_ciphertext``."""
        ...

    async def release_refresh(self, *, enterprise_id: str, team_id: str, tokens_ciphertext: str) -> None: ...

    async def delete(self, *, enterprise_id: str, team_id: str) -> bool: ...


class SlackSharedChannels(Protocol):
    """Which installation keeps each Slack Connect channel: chosen by the first worker to write it, for all."""

    async def keeper(self, *, channel_id: str, enterprise_id: str, team_id: str, now: datetime) -> SlackChannelKeeper:
        """The channel's keeper: (enterprise_id, team_id) when no one chose before, else the one chosen."""
        ...

    async def release(self, *, enterprise_id: str, team_id: str) -> list[str]:
        """Forget the channels this installation kept (an org's, with ``team_id`` ""); their ids."""
        ...


class OAuthStates(Protocol):
    """The OAuth ``state`` values handed out by the install page: each consumed at most once, before it expires."""

    async def issue(self, *, state: str, expires: datetime) -> None: ...

    async def consume(self, *, state: str, now: datetime) -> bool: ...


class DatabaseProbe(Protocol):
    """What /readyz and the gauges ask the running bot's own database."""

    async def writable(self) -> bool:
        """True when a write transaction can start now (nothing is written)."""
        ...

    async def waiting_threads(self) -> int:
        """Threads holding user messages that no posted reply has covered yet."""
        ...
