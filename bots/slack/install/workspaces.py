"""Each workspace's own token for every Web API call made on its behalf, in handlers and outside them.

With "Add to Slack" there is no one bot token: each installed workspace (or org) has its own, and bolt's
authorize step picks it for the ``client`` it hands a listener. But most of what threadkeeper says to Slack is
said outside bolt's listeners, through the adapter's one long-lived client: replies streamed by router tasks,
status and agent sessions, cards posted at start-up for threads an earlier run left, approvals that expire,
exports, name lookups. :class:`WorkspaceClient` is that client: an ``AsyncWebClient`` whose every call carries the
token of the workspace the caller acts for, and fails (``NotInstalled``, a ``SlackClientError`` the callers
already handle) when it acts for none or for one that is not installed. It never falls back to another
workspace's token.

Who the caller acts for is a context variable, set where it is known: bolt's middleware for every request
(:func:`act_for` with the authorized team, org and bot user, until the request ends), and the outbox for every
thread's work (the
thread key names its workspace). asyncio copies the context into the tasks a handler starts, so a reply's work
acts for the workspace whose event started it. :class:`WorkspaceTokens` finds the token (kept 30 s in memory),
rotates it when Slack's token rotation is on and it expires within two hours (the rotator bolt's authorize uses
too, which refreshes once across workers: rotation.py), and forgets it the moment the workspace uninstalls.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackClientError
from slack_sdk.oauth.installation_store import Bot
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient

from bots.router.bounded import BoundedCache
from bots.seam.messages import ThreadKey
from bots.slack.install.installations import StoredInstallations

TOKEN_TTL_S = 30.0
ROTATE_MINUTES_BEFORE = 120  # bolt's default: rotate when a token has less than two hours left
ORGS_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Acting:
    team_id: str
    enterprise_id: str | None = None
    bot_user_id: str | None = None


_acting: contextvars.ContextVar[Acting | None] = contextvars.ContextVar("slack_acting_for", default=None)


@contextmanager
def acting_for(acting: Acting) -> Iterator[None]:
    """Calls made inside (and in tasks started inside) use ``acting``'s workspace token."""
    reset = _acting.set(acting)
    try:
        yield
    finally:
        _acting.reset(reset)


def acting_for_thread(thread: ThreadKey) -> AbstractContextManager[None]:
    """Calls made inside use the token of ``thread``'s workspace, keeping the org an event of the same workspace
    already named (the router's work, outside any bolt request, knows only the thread key)."""
    current = _acting.get()
    if current is not None and current.team_id == thread.workspace:
        return acting_for(current)
    return acting_for(Acting(team_id=thread.workspace))


def act_for(where: Acting) -> None:
    """From here on in this request (bolt runs its listeners after the middleware returns, so a middleware cannot
    wrap them): the request's scope (:func:`request_scope`) ends it."""
    _acting.set(where)


@contextmanager
def request_scope() -> Iterator[None]:
    """One bolt request: whatever its middleware says it acts for ends with it."""
    reset = _acting.set(None)
    try:
        yield
    finally:
        _acting.reset(reset)


def acting() -> Acting | None:
    return _acting.get()


class NotInstalled(SlackClientError):
    """No installation (or no workspace at all) to call Slack for."""


class WorkspaceTokens:
    """The bot token of a workspace, from the installation store, rotated when due."""

    def __init__(self, *, installations: StoredInstallations, rotator: AsyncTokenRotator | None) -> None:
        self._installations = installations
        self._rotator = rotator
        self._bots: BoundedCache[str, Bot] = BoundedCache(max_entries=ORGS_MAX, ttl_s=TOKEN_TTL_S)  # by team
        self._orgs: BoundedCache[str, str] = BoundedCache(max_entries=ORGS_MAX)  # team -> its org

    def learn(self, where: Acting) -> None:
        """An event said which org a workspace belongs to (org-wide installs are found by the org)."""
        if where.enterprise_id:
            self._orgs.put(where.team_id, where.enterprise_id)

    def forget(self, enterprise_id: str, team_id: str) -> None:
        """The installation is gone: no cached token of it may be used again (an org's: all of them)."""
        if team_id:
            self._bots.discard(team_id)
        else:
            self._bots.clear()

    async def bot_token(self, where: Acting) -> str:
        bot = self._bots.get(where.team_id)
        if bot is None:
            enterprise = where.enterprise_id or self._orgs.get(where.team_id)
            if enterprise:
                bot = await self._installations.async_find_bot(enterprise_id=enterprise, team_id=where.team_id)
            else:
                bot = await self._installations.find_for_team(where.team_id)
            if bot is None:
                raise NotInstalled(f"threadkeeper is not installed in Slack workspace {where.team_id}")
            self._bots.put(where.team_id, bot)
        if bot.bot_refresh_token and self._rotator is not None:
            # once across workers, and stored by the rotator (rotation.py): a newer token, or None to keep this one
            rotated = await self._rotator.perform_bot_token_rotation(
                bot=bot, minutes_before_expiration=ROTATE_MINUTES_BEFORE
            )
            if rotated is not None:
                self._bots.put(where.team_id, rotated)
                bot = rotated
        return bot.bot_token


class WorkspaceClient(AsyncWebClient):
    """The adapter's client in OAuth mode: each call with the token of the workspace it is made for."""

    def __init__(self, *, tokens: WorkspaceTokens, **kwargs: Any) -> None:
        super().__init__(token=None, **kwargs)
        self._tokens = tokens

    async def api_call(  # type: ignore[override]
        self,
        api_method: str,
        *,
        http_verb: str = "POST",
        files: dict[str, Any] | None = None,
        data: Any = None,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        auth: Any = None,
    ) -> Any:
        explicit = any(isinstance(part, dict) and part.get("token") for part in (params, json, data))
        if auth is None and not explicit and "Authorization" not in (headers or {}):
            where = _acting.get()
            if where is None:
                raise NotInstalled(f"{api_method} was called for no Slack workspace")
            headers = {**(headers or {}), "Authorization": f"Bearer {await self._tokens.bot_token(where)}"}
        return await super().api_call(
            api_method,
            http_verb=http_verb,
            files=files,
            data=data,
            params=params,
            json=json,
            headers=headers,
            auth=auth,
        )
