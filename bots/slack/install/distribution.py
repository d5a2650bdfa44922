"""SlackDistribution: what the Slack adapter adds in OAuth mode ("Add to Slack" in many workspaces).

- the settings: SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and SLACK_SIGNING_SECRET in HTTP mode, instead of
  SLACK_BOT_TOKEN; TOKEN_ENCRYPTION_KEY seals the tokens (``sealing.py``); every mistake is one ConfigError;
- bolt's OAuth flow (``/slack/install``, ``/slack/oauth_redirect``) asking for the scopes of slack-manifest.yml,
  its stores on our database (``installations.py``), and bolt's authorize step reading them (bot tokens only,
  its auth.test answer cached per token, rotation through the same client as every other call);
- the adapter's client, which calls Slack with the token of the workspace each call is for (``workspaces.py``),
  and the middleware that says which one that is for every request;
- ``app_uninstalled`` / ``tokens_revoked``: the installation is deleted before the event is acknowledged (and
  scrubbed from the database bytes by storage); bolt then finds no installation for the workspace's events, so
  its threads are no longer answered, until a reinstall writes a new one;
- Slack Connect: a channel shared by two workspaces that both installed the app can bring the same message once
  per installation. The channel's keeper, the first installation any worker saw in it (chosen in the database:
  ``shared_channels.py``), answers it (the channel's messages are keyed as that workspace's), so the log's
  unique message ids make a second delivery a no-op instead of a second answer; an uninstall releases the
  channels its installation kept;
- token rotation: bolt's authorize and the adapter's client share one rotator, which refreshes an expiring token
  once across the workers of one database (``rotation.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bots.config import ConfigError, Settings
from bots.router.bounded import BoundedCache
from bots.slack.install.installations import InstallationRows, StateRows, StoredInstallations, StoredStates
from bots.slack.install.rotation import SharedTokenRotator
from bots.slack.install.scopes import ManifestScopes, manifest_scopes
from bots.slack.install.sealing import MISSING_KEY, TokenSeal, WrongKey, wrong_key_error
from bots.slack.install.shared_channels import KeeperRows, SharedChannelKeepers
from bots.slack.install.workspaces import Acting, WorkspaceClient, WorkspaceTokens, act_for, acting

log = logging.getLogger(__name__)

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
UNINSTALL_EVENTS = ("app_uninstalled", "tokens_revoked")
BOT_USERS_MAX = 10_000


def distribution_problem(settings: Settings) -> str | None:
    """Why these settings cannot run Slack through OAuth installs, naming the variables; None when they can."""
    if settings.slack_bot_token is not None:
        return (
            "SLACK_BOT_TOKEN and SLACK_CLIENT_ID / SLACK_CLIENT_SECRET are both set. Set SLACK_BOT_TOKEN alone to run "
            "in one workspace, or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (with SLACK_SIGNING_SECRET and "
            "TOKEN_ENCRYPTION_KEY) to install the app in many workspaces through /slack/install."
        )
    credentials = {"SLACK_CLIENT_ID": settings.slack_client_id, "SLACK_CLIENT_SECRET": settings.slack_client_secret}
    missing = [name for name, value in credentials.items() if value is None]
    if missing:
        return (
            f"{missing[0]} is not set. Slack installs in many workspaces need both SLACK_CLIENT_ID and "
            "SLACK_CLIENT_SECRET: copy them from the app's Basic Information > App Credentials."
        )
    if settings.slack_app_token is not None:
        return (
            "SLACK_APP_TOKEN (Socket Mode) is set with SLACK_CLIENT_ID. Apps installed in many workspaces receive "
            "events over HTTPS: unset SLACK_APP_TOKEN and set SLACK_SIGNING_SECRET (HTTP mode, /slack/events), or "
            "use Socket Mode in one workspace with SLACK_BOT_TOKEN instead of SLACK_CLIENT_ID / SLACK_CLIENT_SECRET."
        )
    if settings.slack_signing_secret is None:
        return (
            "SLACK_SIGNING_SECRET is not set. Slack installs in many workspaces run in HTTP mode and need it to "
            "verify requests: copy it from Basic Information > App Credentials."
        )
    if settings.token_encryption_key is None:
        return MISSING_KEY
    return None


class SlackDistribution:
    """The OAuth half of the Slack adapter; the adapter asks it for a client, app arguments and middleware."""

    def __init__(
        self,
        *,
        settings: Settings,
        installations: InstallationRows | None,
        oauth_states: StateRows | None,
        shared_channels: KeeperRows | None,
        clock: Callable[[], datetime],
        scopes: ManifestScopes | None = None,
    ) -> None:
        problem = distribution_problem(settings)
        if problem:
            raise ConfigError(problem)
        if installations is None or oauth_states is None or shared_channels is None:
            raise ConfigError("Slack installs need the database's installation stores (a bug: none were passed).")
        assert settings.slack_client_id and settings.slack_client_secret and settings.token_encryption_key
        self.scopes = scopes or manifest_scopes()
        self.installations = StoredInstallations(
            rows=installations,
            seal=TokenSeal(settings.token_encryption_key.get_secret_value()),
            clock=clock,
            on_delete=self._forget,
        )
        base: dict[str, Any] = {"base_url": settings.slack_api_url.rstrip("/") + "/"} if settings.slack_api_url else {}
        # bolt's authorize and the rotator call Slack with tokens they pass themselves (auth.test, oauth.v2.access).
        plain = AsyncWebClient(**base)
        secret = settings.slack_client_secret.get_secret_value()
        rotator = SharedTokenRotator(
            installations=self.installations, client_id=settings.slack_client_id, client_secret=secret, client=plain
        )
        self.tokens = WorkspaceTokens(installations=self.installations, rotator=rotator)
        self.client = WorkspaceClient(tokens=self.tokens, **base)
        self.oauth_settings = AsyncOAuthSettings(
            client_id=settings.slack_client_id,
            client_secret=secret,
            scopes=list(self.scopes.bot),
            user_scopes=list(self.scopes.user),
            redirect_uri=settings.slack_redirect_uri,
            install_path=INSTALL_PATH,
            redirect_uri_path=REDIRECT_PATH,
            installation_store=self.installations,
            installation_store_bot_only=True,
            state_store=StoredStates(rows=oauth_states, clock=clock),
            logger=log,
        )
        self.authorize = AsyncInstallationStoreAuthorize(
            logger=log,
            installation_store=self.installations,
            client_id=settings.slack_client_id,
            client_secret=secret,
            bot_only=True,
            cache_enabled=True,  # auth.test once per token, not once per event
            client=plain,
        )
        self.authorize.token_rotator = rotator  # bolt's own flow, with the refresh spent once across workers
        self.keepers = SharedChannelKeepers(rows=shared_channels, clock=clock)
        self._bot_users: BoundedCache[str, str] = BoundedCache(max_entries=BOT_USERS_MAX)  # team -> bot user

    async def check_key(self) -> int:
        """At start-up: the key opens every stored installation (else a ConfigError); how many there are."""
        try:
            return await self.installations.check_key()
        except WrongKey:
            raise wrong_key_error(installations=await self.installations.count()) from None

    async def download_headers(self) -> dict[str, str]:
        """The Authorization header for the current workspace's files (sent only to Slack's file hosts)."""
        where = acting()
        if where is None:
            return {}
        try:
            return {"Authorization": f"Bearer {await self.tokens.bot_token(where)}"}
        except SlackClientError as exc:  # uninstalled meanwhile: its files are refused, the message still logged
            log.info("no Slack token for file downloads in %s (%s)", where.team_id, type(exc).__name__)
            return {}

    def _forget(self, enterprise_id: str, team_id: str) -> None:
        self.tokens.forget(enterprise_id, team_id)
        self.authorize.authorize_result_cache.clear()  # keyed by token: the revoked ones must not answer again

    # -- bolt middleware (before every other) ----------------------------------------------------------------

    async def middleware(
        self, context: AsyncBoltContext, body: dict[str, Any], next_: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        """Act for the request's installation; uninstalls are handled here, before any allowlist."""
        raw_event = body.get("event")
        event: dict[str, Any] = raw_event if isinstance(raw_event, dict) else {}
        if body.get("type") == "event_callback" and event.get("type") in UNINSTALL_EVENTS:
            await self._uninstalled(body, event)
            return BoltResponse(status=200, body="")
        team = context.team_id or ""
        if context.bot_user_id:
            self._bot_users.put(team, context.bot_user_id)
        enterprise, team = await self._keeper_of_shared_channel(body, event, context.enterprise_id or "", team)
        where = Acting(team_id=team, enterprise_id=enterprise or None, bot_user_id=await self._bot_user_of(team))
        self.tokens.learn(where)
        act_for(where)  # until the request ends (the adapter's request_scope)
        await next_()
        return None

    async def _keeper_of_shared_channel(
        self, body: dict[str, Any], event: dict[str, Any], enterprise: str, team: str
    ) -> tuple[str, str]:
        """The (org, workspace) to act for: in a Slack Connect channel, its keeper (see above)."""
        channel = event.get("channel")
        if body.get("is_ext_shared_channel") is not True or not isinstance(channel, str) or not team:
            return enterprise, team
        enterprise, keeper = await self.keepers.keeper(channel_id=channel, enterprise_id=enterprise, team_id=team)
        if keeper != team:
            authorizations = body.get("authorizations")
            if isinstance(authorizations, list) and authorizations and isinstance(authorizations[0], dict):
                authorizations[0]["team_id"] = keeper  # the thread key's workspace (translate.team_of)
            body["team_id"] = keeper
        return enterprise, keeper

    async def _bot_user_of(self, team: str) -> str | None:
        """The bot's user in ``team``: from its events, else (a keeper whose events reach other workers) from its
        installation."""
        known = self._bot_users.get(team)
        if known is None and team:
            bot = await self.installations.find_for_team(team)
            if bot is not None and bot.bot_user_id:
                known = bot.bot_user_id
                self._bot_users.put(team, known)
        return known

    async def _uninstalled(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        enterprise = body.get("enterprise_id") or None
        team = None if body.get("is_enterprise_install") else body.get("team_id") or None
        raw_tokens = event.get("tokens")
        tokens: dict[str, Any] = raw_tokens if isinstance(raw_tokens, dict) else {}
        if event.get("type") == "app_uninstalled" or tokens.get("bot"):
            await self.installations.async_delete_all(enterprise_id=enterprise, team_id=team)
            released = await self.keepers.release(enterprise_id=enterprise or "", team_id=team or "")
            if released:
                log.info("Slack: %d shared channel(s) of %s will be kept by another installation", len(released), team)
        for user in tokens.get("oauth") or ():
            await self.installations.async_delete_installation(enterprise_id=enterprise, team_id=team, user_id=user)
        log.info("Slack: %s in %s; its tokens are deleted", event.get("type"), team or enterprise)


def one_workspace_client(
    settings: Settings, *, socket_mode: bool, signing_secret: str | None
) -> tuple[AsyncWebClient, dict[str, str]]:
    """SLACK_BOT_TOKEN (one workspace, as before installs): its client, and the header its files download with."""
    if settings.slack_bot_token is None:
        raise ConfigError(
            "SLACK_BOT_TOKEN is not set. Set it to the app's Bot User OAuth Token (xoxb-...), or set "
            "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET to install the app in many workspaces."
        )
    if not socket_mode and not signing_secret:
        raise ConfigError(
            "SLACK_SIGNING_SECRET is not set. HTTP mode (no SLACK_APP_TOKEN) needs it to verify requests: "
            "copy it from Basic Information > App Credentials, or set SLACK_APP_TOKEN to use Socket Mode."
        )
    client_args: dict[str, Any] = {"token": settings.slack_bot_token.get_secret_value()}
    if settings.slack_api_url:
        client_args["base_url"] = settings.slack_api_url.rstrip("/") + "/"
    # url_private downloads need the bot token as Bearer (scope files:read); kept out of every repr and log,
    # and sent only to Slack's file hosts (bots/files/downloads.py decides, not the adapter).
    headers = {"Authorization": f"Bearer {settings.slack_bot_token.get_secret_value()}"}
    return AsyncWebClient(**client_args), headers
