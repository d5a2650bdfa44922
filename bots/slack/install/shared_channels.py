"""Slack Connect: which installation answers a channel shared by two workspaces that both installed the app.

Such a channel brings each of its messages once per installation, and the two copies name different workspaces.
The bot answers as one of them, the channel's keeper, so both copies key the same thread and the log's unique
message ids make the second copy a no-op instead of a second answer. With several workers the copies may reach
different workers first, so the keeper is chosen in the database (``storage/shared_channels.py``): the first
worker to write a channel's row wins, and every worker reads that row.

Each worker keeps what it read in memory for a minute. A copy from the keeper itself is then answered without a
database read; a copy from another installation always asks the database (it is the one that could disagree).
An uninstall releases the channels its installation kept: the next event of such a channel, from an installation
still there, chooses again (its threads go on as threads of that workspace). Other workers notice at their next
copy from the remaining installation (it asks the database, which no longer names the old keeper), or within the
minute their memory holds an entry.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from bots.router.bounded import BoundedCache

KEEPERS_MAX = 10_000
KEEPER_TTL_S = 60.0


class KeeperRow(Protocol):
    """What storage hands back (``storage.records.SlackChannelKeeper``)."""

    @property
    def enterprise_id(self) -> str: ...
    @property
    def team_id(self) -> str: ...


class KeeperRows(Protocol):
    """``storage.protocols.SlackSharedChannels``, as this adapter uses it."""

    async def keeper(self, *, channel_id: str, enterprise_id: str, team_id: str, now: datetime) -> KeeperRow: ...

    async def release(self, *, enterprise_id: str, team_id: str) -> list[str]: ...


class SharedChannelKeepers:
    """Each Slack Connect channel's keeper (org, workspace), chosen once for every worker."""

    def __init__(self, *, rows: KeeperRows, clock: Callable[[], datetime]) -> None:
        self._rows = rows
        self._clock = clock
        self._known: BoundedCache[str, tuple[str, str]] = BoundedCache(max_entries=KEEPERS_MAX, ttl_s=KEEPER_TTL_S)

    async def keeper(self, *, channel_id: str, enterprise_id: str, team_id: str) -> tuple[str, str]:
        """The (enterprise, team) that keeps ``channel_id``; this installation when none did before."""
        known = self._known.get(channel_id)
        if known is not None and known[1] == team_id:
            return known
        row = await self._rows.keeper(
            channel_id=channel_id, enterprise_id=enterprise_id, team_id=team_id, now=self._clock()
        )
        chosen = (row.enterprise_id, row.team_id)
        self._known.put(channel_id, chosen)
        return chosen

    async def release(self, *, enterprise_id: str, team_id: str) -> list[str]:
        """The installation was removed: its channels are chosen afresh (for this worker at once)."""
        released = await self._rows.release(enterprise_id=enterprise_id, team_id=team_id)
        self._known.clear()
        return released
