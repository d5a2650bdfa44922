"""Token rotation spent once across workers: one refresh per expiring token, whoever sees it expire first.

With token rotation on, a bot token lasts twelve hours and comes with a refresh token; bolt's rotator trades the
refresh token for a new pair (``oauth.v2.access``, ``grant_type=refresh_token``) once the token has less than two
hours left, both from bolt's authorize step (every event) and from the adapter's own calls (workspaces.py). With
several workers, events of one workspace reach several of them at once: each would spend the same refresh token
(Slack may refuse the second use, and bolt then drops the event) and the slower one could save its pair over the
newer one.

:class:`SharedTokenRotator` is bolt's own rotator with its one bot-token method wrapped, so bolt's flow is
unchanged (``AsyncInstallationStoreAuthorize.token_rotator`` is set to it): before refreshing, it re-reads the
installation; a token someone else refreshed meanwhile is used as it is; otherwise the worker claims the refresh
on the installation's row (``claim_refresh``: one claimant at a time, for ``CLAIM_HOLD_S`` of the database's
clock), refreshes, and saves the new pair only over the tokens it refreshed from (a compare-and-swap on the
sealed tokens). A worker that finds the refresh claimed waits for the new row (polling every ``POLL_S``); one
that waited the claim's whole length uses the token it has (it has up to two hours left) and logs why. Within
one worker, callers whose token is due queue on a lock instead, so they read the row after the refresh.
bolt then calls ``async_save_bot`` with the returned bot, which is already stored: nothing is written twice.
"""

from __future__ import annotations

import asyncio
import logging
import time

from slack_sdk.oauth.installation_store import Bot
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.install.installations import StoredBot, StoredInstallations

log = logging.getLogger(__name__)

CLAIM_HOLD_S = 30.0  # the refresh call's own timeout: a worker that died mid-refresh blocks the others this long
POLL_S = 0.1


def _due(bot: Bot, minutes_before_expiration: int) -> bool:
    """bolt's rule: refresh once fewer than ``minutes_before_expiration`` minutes are left."""
    expires = bot.bot_token_expires_at
    return expires is not None and expires <= time.time() + minutes_before_expiration * 60


def _expired(bot: Bot) -> bool:
    return _due(bot, 0)


class SharedTokenRotator(AsyncTokenRotator):
    """bolt's AsyncTokenRotator; a bot token's refresh happens once across the workers sharing the database."""

    def __init__(
        self,
        *,
        installations: StoredInstallations,
        client_id: str,
        client_secret: str,
        client: AsyncWebClient,
        claim_hold_s: float = CLAIM_HOLD_S,
        poll_s: float = POLL_S,
    ) -> None:
        super().__init__(client_id=client_id, client_secret=client_secret, client=client)
        self._installations = installations
        self._claim_hold_s = claim_hold_s
        self._poll_s = poll_s
        self._in_process = asyncio.Lock()

    async def perform_bot_token_rotation(self, *, bot: Bot, minutes_before_expiration: int = 120) -> Bot | None:
        """The bot to use instead of ``bot`` (refreshed here or by another worker, and stored), or None: ``bot``
        is good for now (not due, uninstalled meanwhile, or another worker's refresh never finished)."""
        if not _due(bot, minutes_before_expiration):
            return None
        async with self._in_process:
            deadline = time.monotonic() + self._claim_hold_s + self._poll_s
            while True:
                stored = await self._installations.stored_bot(bot)
                if stored is None:
                    return None
                if stored.bot.bot_token != bot.bot_token and not _expired(stored.bot):
                    return stored.bot  # refreshed (or reinstalled) since the caller read it
                if await self._installations.claim_refresh(stored, hold_s=self._claim_hold_s):
                    refreshed = await self._refresh(stored, minutes_before_expiration)
                    if refreshed is not None:
                        return refreshed
                    continue  # reinstalled or uninstalled during the refresh: read it again
                if time.monotonic() >= deadline:
                    log.warning(
                        "Slack: another worker's token refresh for %s did not finish in %.0f s; using the current "
                        "token",
                        stored.team_id or stored.enterprise_id,
                        self._claim_hold_s,
                    )
                    return None
                await asyncio.sleep(self._poll_s)

    async def _refresh(self, stored: StoredBot, minutes_before_expiration: int) -> Bot | None:
        """Spend the refresh token (this caller holds the claim) and save the new pair over the old one (also when
        a worker starting with a new ``TOKEN_ENCRYPTION_KEY`` re-sealed the old one meanwhile); None when the row
        holds another token by now (reinstalled) or is gone (then the caller reads it again)."""
        try:
            refreshed = await super().perform_bot_token_rotation(
                bot=stored.bot, minutes_before_expiration=minutes_before_expiration
            )
        except Exception:
            await self._installations.release_refresh(stored)  # the next caller may try at once
            raise
        if refreshed is None:  # Slack answered with no bot token: nothing to save, the current one stays
            await self._installations.release_refresh(stored)
            return stored.bot
        current: StoredBot | None = stored
        while current is not None and current.bot.bot_token == stored.bot.bot_token:
            if await self._installations.save_refreshed(current, refreshed):
                log.info("Slack: the bot token of %s was refreshed", stored.team_id or stored.enterprise_id)
                return refreshed
            current = await self._installations.stored_bot(stored.bot)  # re-sealed by a new key meanwhile?
        log.info("Slack: the installation of %s changed during a refresh; using what is stored", stored.team_id)
        return None
