"""Slack installations and OAuth states: what "Add to Slack" leaves behind, on either backend.

An installation is one row per workspace (or per org for an org-wide install, ``team_id`` ""), replaced when the
app is installed again, its tokens replaced by a refresh only over the ones they were refreshed from (one worker
at a time claims a refresh: ``claim_refresh``), and deleted at once when Slack says it was uninstalled or its
tokens revoked. Deleting scrubs what the backend keeps of the old row (``SqlDatabase.scrub``: SQLite's
``secure_delete`` pages and WAL, Postgres' VACUUM), so the tokens are gone from the database's bytes, not only
from its queries. The tokens arrive here already encrypted and leave the same way: storage never sees a token,
nor imports Slack's SDK (the bolt-facing adapter is bots/slack/install/installations.py).

An OAuth state is a random value the install page handed out; consuming it deletes it, so each is good once,
and only before it expires. One class each for both backends (``storage.protocols``, ``storage/sql.py``).
"""

from __future__ import annotations

from datetime import datetime

from storage.records import SlackInstallation, iso, record_from_row
from storage.sql import SqlDatabase

_COLUMNS = (
    "enterprise_id, team_id, team_name, bot_user_id, bot_scopes, details_json, tokens_ciphertext, installed_utc, "
    "updated_utc"
)


class SlackInstallations:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

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
    ) -> None:
        """Insert or replace the installation of (enterprise, team); the first install time is kept, and so is a
        refresh claim (a re-seal under a new key must not let a second worker refresh the same tokens)."""
        await self._db.execute(
            f"INSERT INTO slack_installations ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (enterprise_id, team_id) DO UPDATE SET team_name = excluded.team_name, "
            "bot_user_id = excluded.bot_user_id, bot_scopes = excluded.bot_scopes, "
            "details_json = excluded.details_json, tokens_ciphertext = excluded.tokens_ciphertext, "
            "updated_utc = excluded.updated_utc",
            (
                enterprise_id, team_id, team_name, bot_user_id, bot_scopes, details_json, tokens_ciphertext,
                iso(now), iso(now),
            ),
        )  # fmt: skip

    async def find(self, *, enterprise_id: str, team_id: str) -> SlackInstallation | None:
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM slack_installations WHERE enterprise_id = ? AND team_id = ?",
            (enterprise_id, team_id),
        )
        return None if row is None else record_from_row(SlackInstallation, row)

    async def find_team(self, *, team_id: str) -> SlackInstallation | None:
        """The installation of the workspace ``team_id``, whichever org it belongs to."""
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM slack_installations WHERE team_id = ? ORDER BY updated_utc DESC LIMIT 1",
            (team_id,),
        )
        return None if row is None else record_from_row(SlackInstallation, row)

    async def all(self) -> list[SlackInstallation]:
        """Every installation, by team name (``threadkeeper check``, the key check at start-up)."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM slack_installations ORDER BY team_name, enterprise_id, team_id"
        )
        return [record_from_row(SlackInstallation, row) for row in rows]

    async def claim_refresh(self, *, enterprise_id: str, team_id: str, tokens_ciphertext: str, hold_s: float) -> bool:
        """Whether this caller may refresh the tokens ``tokens_ciphertext`` now: True for one caller at a time.

        The claim holds for ``hold_s`` seconds of the database's clock (a worker that dies mid-refresh blocks no
        one for longer), and only while the tokens are still those: a refresh or a reinstall saved since ends it."""
        return (
            await self._db.execute(
                "UPDATE slack_installations SET refresh_claimed_until_s = {now_s} + ? "
                "WHERE enterprise_id = ? AND team_id = ? AND tokens_ciphertext = ? "
                "AND (refresh_claimed_until_s IS NULL OR refresh_claimed_until_s < {now_s})",
                (hold_s, enterprise_id, team_id, tokens_ciphertext),
            )
            > 0
        )

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
        """Save refreshed tokens only over the ones they were refreshed from (and end the claim); False when the
        row holds others by now (refreshed or reinstalled meanwhile) or is gone."""
        return (
            await self._db.execute(
                "UPDATE slack_installations SET details_json = ?, tokens_ciphertext = ?, updated_utc = ?, "
                "refresh_claimed_until_s = NULL WHERE enterprise_id = ? AND team_id = ? AND tokens_ciphertext = ?",
                (details_json, tokens_ciphertext, iso(now), enterprise_id, team_id, was_ciphertext),
            )
            > 0
        )

    async def release_refresh(self, *, enterprise_id: str, team_id: str, tokens_ciphertext: str) -> None:
        """A claimed refresh failed: the next caller may try at once instead of after the claim's hold."""
        await self._db.execute(
            "UPDATE slack_installations SET refresh_claimed_until_s = NULL "
            "WHERE enterprise_id = ? AND team_id = ? AND tokens_ciphertext = ?",
            (enterprise_id, team_id, tokens_ciphertext),
        )

    async def delete(self, *, enterprise_id: str, team_id: str) -> bool:
        """Delete the installation and scrub its old bytes; False when there was none."""
        deleted = await self._db.execute(
            "DELETE FROM slack_installations WHERE enterprise_id = ? AND team_id = ?", (enterprise_id, team_id)
        )
        if deleted:
            await self._db.scrub()
        return deleted > 0


class OAuthStates:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def issue(self, *, state: str, expires: datetime) -> None:
        await self._db.execute("INSERT INTO oauth_states (state, expires_utc) VALUES (?, ?)", (state, iso(expires)))

    async def consume(self, *, state: str, now: datetime) -> bool:
        """True once for a state issued and not yet expired; expired states are dropped on the way."""
        await self._db.execute("DELETE FROM oauth_states WHERE expires_utc < ?", (iso(now),))
        return await self._db.execute("DELETE FROM oauth_states WHERE state = ?", (state,)) > 0
