"""The contracts of the bot as installed and run: Slack installations, OAuth states, the database probe.

Apart from the conversation's stores because they belong to no thread: "Add to Slack" writes the installations
and consumes the states (``storage/installations.py``), and /readyz and the gauges ask the probe
(``storage.sql.ReadinessProbe``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from storage.records import SlackInstallation


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

    async def delete(self, *, enterprise_id: str, team_id: str) -> bool: ...


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
