"""The shared token rotator (bots/slack/install/rotation.py) on each backend, against the loopback Slack's
``oauth.v2.access``: the rotator bolt's authorize and the adapter's client both use, over the real installation
store (sealed tokens, the claim and the compare-and-swap of storage/installations.py).

Many callers at once in one worker refresh once; a refresh another worker claimed and never finished (it died)
holds the others only until its claim lapses; a refresh Slack refuses releases its claim, so the next caller
tries at once; a token that is not due is never refreshed, and what the rotator returns is stored already; a
worker starting with a new encryption key that re-seals the tokens during a refresh neither takes the claim over
nor makes the refreshed token lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from slack_sdk.errors import SlackTokenRotationError
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.install.installations import StoredInstallations
from bots.slack.install.rotation import SharedTokenRotator
from bots.slack.install.sealing import TokenSeal
from storage.backends import Storage, open_storage
from tests.fakes.slack import FakeSlack, Workspace
from tests.fakes.waiting import wait_until
from tests.slack.distributed import KEY

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
FIRST = "xoxe.xoxb-1-T1-1"
REFRESH = "xoxe-1-refresh-T1-1"


@pytest.fixture(params=["sqlite", "postgres"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    url = f"sqlite:///{tmp_path}/bot.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    async with open_storage(str(url)) as opened:
        yield opened


async def installed(storage: Storage, fake: FakeSlack, *, expires_in_s: int = 600) -> StoredInstallations:
    """T1 installed with rotation on, its token due (inside bolt's two-hour margin); refreshed ones last 12 h."""
    fake.workspaces["T1"] = Workspace(
        "T1", "Team T1", "UBOTT1", rotation=True, tokens=[FIRST], refresh_tokens=[REFRESH], expires_in_s=43_200
    )
    installations = StoredInstallations(rows=storage.slack_installations, seal=TokenSeal(KEY), clock=lambda: NOW)
    await installations.async_save(
        Installation(
            app_id="A1", team_id="T1", team_name="Team T1", user_id="UALICE", bot_token=FIRST, bot_id="BT1",
            bot_user_id="UBOTT1", bot_scopes=["chat:write"], bot_refresh_token=REFRESH,
            bot_token_expires_at=int(time.time()) + expires_in_s,
        )
    )  # fmt: skip
    return installations


def rotator(installations: StoredInstallations, fake: FakeSlack, **kwargs: Any) -> SharedTokenRotator:
    client_id, secret = fake.client_credentials
    client = AsyncWebClient(base_url=fake.api_url)
    return SharedTokenRotator(
        installations=installations, client_id=client_id, client_secret=secret, client=client, **kwargs
    )


def grants(fake: FakeSlack) -> list[Any]:
    return [c for c in fake.calls_to("oauth.v2.access") if c.params.get("grant_type") == "refresh_token"]


async def test_many_callers_at_once_refresh_once_and_all_get_the_stored_new_token(
    storage: Storage, fake_slack: FakeSlack
) -> None:
    installations = await installed(storage, fake_slack)
    bot = await installations.async_find_bot(enterprise_id=None, team_id="T1")
    assert bot is not None
    shared = rotator(installations, fake_slack)
    results = await asyncio.gather(*(shared.perform_bot_token_rotation(bot=bot) for _ in range(5)))
    newest = fake_slack.workspaces["T1"].tokens[-1]
    assert len(grants(fake_slack)) == 1 and newest != FIRST
    assert [r.bot_token if r else None for r in results] == [newest] * 5
    stored = await installations.async_find_bot(enterprise_id=None, team_id="T1")
    assert stored is not None and stored.bot_token == newest and stored.bot_refresh_token != REFRESH
    before = await storage.slack_installations.find(enterprise_id="", team_id="T1")
    await installations.async_save_bot(results[0])  # what bolt does next: nothing is written again
    after = await storage.slack_installations.find(enterprise_id="", team_id="T1")
    assert before is not None and after is not None and after.tokens_ciphertext == before.tokens_ciphertext
    assert await shared.perform_bot_token_rotation(bot=stored) is None  # twelve hours left: nothing to do
    assert len(grants(fake_slack)) == 1


async def test_a_refresh_whose_worker_died_holds_the_others_only_until_its_claim_lapses(
    storage: Storage, fake_slack: FakeSlack
) -> None:
    installations = await installed(storage, fake_slack)
    bot = await installations.async_find_bot(enterprise_id=None, team_id="T1")
    assert bot is not None
    dead = await installations.stored_bot(bot)
    assert dead is not None and await installations.claim_refresh(dead, hold_s=0.5)  # and never saves
    patient = rotator(installations, fake_slack, claim_hold_s=5.0, poll_s=0.05)
    refreshed = await patient.perform_bot_token_rotation(bot=bot)
    assert refreshed is not None and refreshed.bot_token == fake_slack.workspaces["T1"].tokens[-1]
    assert len(grants(fake_slack)) == 1


async def test_a_claim_that_never_lapses_in_time_leaves_the_current_token_in_use(
    storage: Storage, fake_slack: FakeSlack
) -> None:
    installations = await installed(storage, fake_slack)
    bot = await installations.async_find_bot(enterprise_id=None, team_id="T1")
    assert bot is not None
    busy = await installations.stored_bot(bot)
    assert busy is not None and await installations.claim_refresh(busy, hold_s=600)
    impatient = rotator(installations, fake_slack, claim_hold_s=0.2, poll_s=0.05)
    assert await impatient.perform_bot_token_rotation(bot=bot) is None  # bolt goes on with FIRST (still valid)
    assert grants(fake_slack) == []


async def test_a_refresh_slack_refuses_releases_its_claim(storage: Storage, fake_slack: FakeSlack) -> None:
    installations = await installed(storage, fake_slack)
    bot = await installations.async_find_bot(enterprise_id=None, team_id="T1")
    assert bot is not None
    fake_slack.errors["oauth.v2.access"] = ["internal_error"]
    shared = rotator(installations, fake_slack, claim_hold_s=600)
    with pytest.raises(SlackTokenRotationError):
        await shared.perform_bot_token_rotation(bot=bot)
    refreshed = await shared.perform_bot_token_rotation(bot=bot)  # at once, not after the claim's ten minutes
    assert refreshed is not None and refreshed.bot_token == fake_slack.workspaces["T1"].tokens[-1]
    assert len(grants(fake_slack)) == 2


async def test_a_new_key_re_sealing_the_tokens_during_a_refresh_loses_neither_the_refresh_nor_the_claim(
    storage: Storage, fake_slack: FakeSlack
) -> None:
    await installed(storage, fake_slack)
    new_key = Fernet.generate_key().decode()
    # The refreshing worker can open what the new key seals; a second worker starts with TOKEN_ENCRYPTION_KEY=NEW,OLD.
    installations = StoredInstallations(
        rows=storage.slack_installations, seal=TokenSeal(f"{KEY},{new_key}"), clock=lambda: NOW
    )
    bot = await installations.async_find_bot(enterprise_id=None, team_id="T1")
    assert bot is not None
    resealed = asyncio.Event()
    fake_slack.held_until["oauth.v2.access"] = resealed.is_set
    refreshing = asyncio.create_task(rotator(installations, fake_slack).perform_bot_token_rotation(bot=bot))
    await wait_until(lambda: grants(fake_slack), what="the refresh at Slack")
    starting = StoredInstallations(
        rows=storage.slack_installations, seal=TokenSeal(f"{new_key},{KEY}"), clock=lambda: NOW
    )
    assert await starting.check_key() == 1
    second = rotator(starting, fake_slack, claim_hold_s=0.3, poll_s=0.05)
    assert await second.perform_bot_token_rotation(bot=bot) is None  # the claim held through the re-seal
    resealed.set()
    refreshed = await refreshing
    newest = fake_slack.workspaces["T1"].tokens[-1]
    assert refreshed is not None and refreshed.bot_token == newest
    stored = await starting.async_find_bot(enterprise_id=None, team_id="T1")
    assert stored is not None and stored.bot_token == newest
    assert len(grants(fake_slack)) == 1
