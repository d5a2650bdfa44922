"""Which installation keeps each Slack Connect channel, one choice for every worker.

A channel shared by two workspaces that both installed the app brings each message once per installation. The
bot answers it as one of them, the channel's keeper (bots/slack/install/shared_channels.py), so both copies key
the same thread and the log's unique message ids make the second copy a no-op. With several workers, each copy
may reach a different worker first; the choice therefore lives here, written once: the first worker to insert a
channel's row wins (``ON CONFLICT DO NOTHING``), and every worker reads the row that won.

An uninstall releases the channels its installation kept (their rows are deleted): the next event of such a
channel, brought by an installation that is still there, chooses again. Nothing here is secret (channel and
workspace ids), so no scrub follows.
"""

from __future__ import annotations

from datetime import datetime

from storage.records import SlackChannelKeeper, iso
from storage.sql import SqlDatabase

_CHOOSE = (
    "INSERT INTO slack_shared_channels (channel_id, enterprise_id, team_id, chosen_utc) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (channel_id) DO NOTHING"
)
_KEEPER = "SELECT enterprise_id, team_id FROM slack_shared_channels WHERE channel_id = ?"


class SlackSharedChannels:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def keeper(self, *, channel_id: str, enterprise_id: str, team_id: str, now: datetime) -> SlackChannelKeeper:
        """The channel's keeper: the installation proposed here when no worker chose one before, else that one."""
        _, row = await self._db.script(
            [(_CHOOSE, (channel_id, enterprise_id, team_id, iso(now))), (_KEEPER, (channel_id,))]
        )
        assert row is not None  # inserted above, or there already: rows go only with their keeper's uninstall
        return SlackChannelKeeper(enterprise_id=str(row["enterprise_id"]), team_id=str(row["team_id"]))

    async def release(self, *, enterprise_id: str, team_id: str) -> list[str]:
        """The installation is gone: the channels it kept are chosen afresh; which channels those were.

        A workspace's install is named by its team (``team_id`` ""): an org-wide install, all of the org's."""
        async with self._db.atomic() as tx:
            if team_id:
                rows = await tx.fetchall(
                    "DELETE FROM slack_shared_channels WHERE team_id = ? RETURNING channel_id", (team_id,)
                )
            else:
                rows = await tx.fetchall(
                    "DELETE FROM slack_shared_channels WHERE enterprise_id = ? RETURNING channel_id", (enterprise_id,)
                )
        return sorted(str(row["channel_id"]) for row in rows)
