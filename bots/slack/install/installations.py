"""bolt's installation and OAuth state stores, on threadkeeper's own database (storage/installations.py).

bolt asks an ``AsyncInstallationStore`` for the installation of each request's workspace and saves what "Add to
Slack" returns; an ``AsyncOAuthStateStore`` hands out the install page's ``state`` and checks it once on the way
back. Here both are thin: bolt's objects become plain rows (the non-secret fields as JSON, the tokens and the
incoming webhook URL sealed by :class:`~bots.slack.install.sealing.TokenSeal`) and back. The rows' store is a
structural Protocol below, so this adapter never imports storage/.

One row per workspace (or org, for an org-wide install): the bot's installation, which is what every call of ours
uses (bolt is configured ``installation_store_bot_only``). A reinstall replaces it; token rotation saves the new
token over it, only over the one it was refreshed from (``save_refreshed``, driven by rotation.py); ``delete_*``
(app_uninstalled, tokens_revoked) remove it at once, scrubbed from the database bytes.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from bots.slack.install.sealing import TokenSeal

log = logging.getLogger(__name__)

SEALED_FIELDS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token", "incoming_webhook_url")
BOT_FIELDS = ("bot_token", "bot_id", "bot_user_id", "bot_scopes", "bot_refresh_token", "bot_token_expires_at")


class InstallationRow(Protocol):
    """What storage hands back (``storage.records.SlackInstallation``)."""

    @property
    def enterprise_id(self) -> str: ...
    @property
    def team_id(self) -> str: ...
    @property
    def team_name(self) -> str | None: ...
    @property
    def bot_scopes(self) -> str: ...
    @property
    def details_json(self) -> str: ...
    @property
    def tokens_ciphertext(self) -> str: ...
    @property
    def installed_utc(self) -> str: ...


class InstallationRows(Protocol):
    """``storage.protocols.SlackInstallations``, as far as this adapter uses it."""

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

    async def find(self, *, enterprise_id: str, team_id: str) -> InstallationRow | None: ...

    async def find_team(self, *, team_id: str) -> InstallationRow | None: ...

    async def all(self) -> Sequence[InstallationRow]: ...

    async def claim_refresh(
        self, *, enterprise_id: str, team_id: str, tokens_ciphertext: str, hold_s: float
    ) -> bool: ...

    async def replace_tokens(
        self,
        *,
        enterprise_id: str,
        team_id: str,
        was_ciphertext: str,
        details_json: str,
        tokens_ciphertext: str,
        now: datetime,
    ) -> bool: ...

    async def release_refresh(self, *, enterprise_id: str, team_id: str, tokens_ciphertext: str) -> None: ...

    async def delete(self, *, enterprise_id: str, team_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class StoredBot:
    """A bot as its row holds it now: the row's key and sealed tokens name the version a refresh starts from."""

    enterprise_id: str
    team_id: str
    sealed: str
    fields: dict[str, Any]
    bot: Bot


class StateRows(Protocol):
    """``storage.protocols.OAuthStates``."""

    async def issue(self, *, state: str, expires: datetime) -> None: ...

    async def consume(self, *, state: str, now: datetime) -> bool: ...


def _key(enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None) -> tuple[str, str]:
    """The row's key: an org-wide install is the org's, whatever workspace of it an event came from."""
    return (enterprise_id or "", "" if is_enterprise_install and enterprise_id else team_id or "")


def _plain(name: str, value: Any) -> Any:
    """JSON for a field of bolt's objects: times as epoch seconds (whole seconds for token expiries, as bolt
    keeps them)."""
    if not isinstance(value, datetime):
        return value
    return int(value.timestamp()) if name.endswith("_expires_at") else value.timestamp()


class StoredInstallations(AsyncInstallationStore):
    """bolt's AsyncInstallationStore over :class:`InstallationRows`, tokens sealed."""

    def __init__(
        self,
        *,
        rows: InstallationRows,
        seal: TokenSeal,
        clock: Callable[[], datetime],
        on_delete: Callable[[str, str], None] = lambda enterprise_id, team_id: None,
    ) -> None:
        self._rows = rows
        self._seal = seal
        self._clock = clock
        self._on_delete = on_delete  # forget cached tokens of (enterprise, team)

    @property
    def logger(self) -> logging.Logger:
        return log

    # -- rows <-> bolt's objects -----------------------------------------------------------------------------

    def _fields(self, row: InstallationRow) -> dict[str, Any]:
        """Every field of the stored installation, its tokens opened (raises WrongKey with the wrong key)."""
        fields: dict[str, Any] = json.loads(row.details_json)
        fields.update(json.loads(self._seal.open(row.tokens_ciphertext)))
        return fields

    def _sealed(self, fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """The non-secret fields as stored (JSON-ready), and the secret ones sealed."""
        fields = {name: _plain(name, value) for name, value in fields.items() if value is not None}
        secret = {name: fields.pop(name) for name in SEALED_FIELDS if name in fields}
        return fields, self._seal.seal(json.dumps(secret, sort_keys=True))

    async def _write(self, fields: dict[str, Any]) -> None:
        fields, sealed = self._sealed(fields)
        scopes = fields.get("bot_scopes") or ""
        enterprise_id, team_id = _key(
            fields.get("enterprise_id"), fields.get("team_id"), fields.get("is_enterprise_install")
        )
        await self._rows.save(
            enterprise_id=enterprise_id,
            team_id=team_id,
            team_name=fields.get("team_name") or fields.get("enterprise_name"),
            bot_user_id=fields.get("bot_user_id"),
            bot_scopes=scopes if isinstance(scopes, str) else ",".join(scopes),
            details_json=json.dumps(fields, sort_keys=True),
            tokens_ciphertext=sealed,
            now=self._clock(),
        )

    async def _row(
        self, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None
    ) -> InstallationRow | None:
        enterprise, team = _key(enterprise_id, team_id, is_enterprise_install)
        row = await self._rows.find(enterprise_id=enterprise, team_id=team)
        if row is None and enterprise and team:
            row = await self._rows.find(enterprise_id=enterprise, team_id="")  # an org-wide install covers it
        return row

    async def _find(
        self, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None
    ) -> dict[str, Any] | None:
        row = await self._row(enterprise_id, team_id, is_enterprise_install)
        return None if row is None else self._fields(row)

    # -- token rotation across workers (rotation.py) ---------------------------------------------------------

    async def stored_bot(self, bot: Bot) -> StoredBot | None:
        """``bot``'s installation as stored now (None once uninstalled, or without a bot token)."""
        row = await self._row(bot.enterprise_id, bot.team_id, bot.is_enterprise_install)
        if row is None:
            return None
        fields = self._fields(row)
        if not fields.get("bot_token"):
            return None
        stored = Installation(**_installation_args(fields)).to_bot()
        return StoredBot(row.enterprise_id, row.team_id, row.tokens_ciphertext, fields, stored)

    async def claim_refresh(self, stored: StoredBot, *, hold_s: float) -> bool:
        return await self._rows.claim_refresh(
            enterprise_id=stored.enterprise_id, team_id=stored.team_id, tokens_ciphertext=stored.sealed, hold_s=hold_s
        )

    async def release_refresh(self, stored: StoredBot) -> None:
        await self._rows.release_refresh(
            enterprise_id=stored.enterprise_id, team_id=stored.team_id, tokens_ciphertext=stored.sealed
        )

    async def save_refreshed(self, stored: StoredBot, refreshed: Bot) -> bool:
        """Save ``refreshed`` over the tokens it was refreshed from; False when the row holds others by now."""
        fields = {**stored.fields, **refreshed.to_dict_for_copying()}
        fields.pop("custom_values", None)
        details, sealed = self._sealed(fields)
        return await self._rows.replace_tokens(
            enterprise_id=stored.enterprise_id,
            team_id=stored.team_id,
            was_ciphertext=stored.sealed,
            details_json=json.dumps(details, sort_keys=True),
            tokens_ciphertext=sealed,
            now=self._clock(),
        )

    async def find_for_team(self, team_id: str) -> Bot | None:
        """The bot of workspace ``team_id`` when no event says its org (calls made outside an event)."""
        row = await self._rows.find_team(team_id=team_id)
        if row is None:
            return None
        fields = self._fields(row)
        return Installation(**_installation_args(fields)).to_bot() if fields.get("bot_token") else None

    async def count(self) -> int:
        return len(await self._rows.all())

    async def check_key(self) -> int:
        """Open every stored installation (raises WrongKey); re-seal those an older key sealed. The count."""
        rows = await self._rows.all()
        for row in rows:
            fields = self._fields(row)
            if not self._seal.is_current(row.tokens_ciphertext):
                await self._write(fields)
        return len(rows)

    # -- AsyncInstallationStore ------------------------------------------------------------------------------

    async def async_save(self, installation: Installation) -> None:
        await self._write(installation.to_dict_for_copying())
        log.info(
            "Slack: installed in %s (%s)",
            installation.team_name or installation.enterprise_name,
            installation.team_id or installation.enterprise_id,
        )

    async def async_save_bot(self, bot: Bot) -> None:
        """A rotated bot token: the stored installation keeps everything else. bolt calls this with what the
        rotator returned (rotation.py), which is stored already: nothing is written again then."""
        fields = await self._find(bot.enterprise_id, bot.team_id, bot.is_enterprise_install) or {}
        if fields.get("bot_token") == bot.bot_token:
            return
        fields.update(bot.to_dict_for_copying())
        fields.pop("custom_values", None)
        await self._write(fields)

    async def async_find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        fields = await self._find(enterprise_id, team_id, is_enterprise_install)
        if fields is None or not fields.get("bot_token"):
            return None
        return Installation(**_installation_args(fields)).to_bot()

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        fields = await self._find(enterprise_id, team_id, is_enterprise_install)
        if fields is None or (user_id is not None and fields.get("user_id") != user_id):
            return None
        return Installation(**_installation_args(fields))

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.async_delete_all(enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        if user_id is None:
            await self.async_delete_all(enterprise_id=enterprise_id, team_id=team_id)
            return
        fields = await self._find(enterprise_id, team_id, not team_id)
        if fields is not None and fields.get("user_id") == user_id:  # the installer's own token goes, the bot stays
            for name in ("user_token", "user_refresh_token", "user_token_expires_at", "user_scopes"):
                fields.pop(name, None)
            await self._write(fields)

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        enterprise, team = enterprise_id or "", team_id or ""
        deleted = await self._rows.delete(enterprise_id=enterprise, team_id=team)
        self._on_delete(enterprise, team)
        log.info("Slack: the installation of %s was %s", team or enterprise, "deleted" if deleted else "already gone")


def _installation_args(fields: dict[str, Any]) -> dict[str, Any]:
    """Installation(...) keywords from stored fields (bolt's own names; unknown extras dropped)."""
    known = set(Installation.__init__.__code__.co_varnames)
    return {name: value for name, value in fields.items() if name in known and name != "self"}


class StoredStates(AsyncOAuthStateStore):
    """bolt's AsyncOAuthStateStore over :class:`StateRows`: a random state, good once for ``expiration_s``."""

    def __init__(self, *, rows: StateRows, clock: Callable[[], datetime], expiration_s: int = 600) -> None:
        self._rows = rows
        self._clock = clock
        self.expiration_s = expiration_s

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(32)
        await self._rows.issue(state=state, expires=self._clock() + timedelta(seconds=self.expiration_s))
        return state

    async def async_consume(self, state: str) -> bool:
        if await self._rows.consume(state=state, now=self._clock()):
            return True
        log.info("Slack: refused an install callback whose state is unknown, used or expired")
        return False
