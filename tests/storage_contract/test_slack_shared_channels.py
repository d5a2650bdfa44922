"""Several workers sharing Slack installs, on each backend: a Slack Connect channel's keeper is chosen once (the
first writer wins, every later proposal reads that choice, also when two race) and released by its installation's
uninstall; a token refresh is claimed by one caller at a time and saved only over the tokens it started from."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from storage.backends import Storage, open_storage
from storage.records import SlackChannelKeeper
from tests.storage_contract.conftest import NOW
from tests.storage_contract.test_slack_installations import installation, save


async def test_the_first_installation_to_propose_keeps_a_shared_channel(storage: Storage) -> None:
    channels = storage.slack_shared_channels
    first = await channels.keeper(channel_id="CSHARED", enterprise_id="", team_id="T1", now=NOW)
    assert first == SlackChannelKeeper(enterprise_id="", team_id="T1")
    later = await channels.keeper(channel_id="CSHARED", enterprise_id="E2", team_id="T2", now=NOW)
    assert later == first
    other = await channels.keeper(channel_id="COTHER", enterprise_id="E2", team_id="T2", now=NOW)
    assert other == SlackChannelKeeper(enterprise_id="E2", team_id="T2")


async def test_two_workers_proposing_at_once_get_the_same_keeper(storage: Storage, database_url: str) -> None:
    async with open_storage(database_url) as second:
        for n in range(20):
            channel = f"C{n}"
            one, two = await asyncio.gather(
                storage.slack_shared_channels.keeper(channel_id=channel, enterprise_id="", team_id="T1", now=NOW),
                second.slack_shared_channels.keeper(channel_id=channel, enterprise_id="", team_id="T2", now=NOW),
            )
            assert one == two, channel


async def test_an_uninstall_releases_the_channels_its_installation_kept(storage: Storage) -> None:
    channels = storage.slack_shared_channels
    for channel, team in (("C1", "T1"), ("C2", "T1"), ("C3", "T2")):
        await channels.keeper(channel_id=channel, enterprise_id="E1", team_id=team, now=NOW)
    await channels.keeper(channel_id="C4", enterprise_id="E9", team_id="T9", now=NOW)
    assert await channels.release(enterprise_id="E1", team_id="T1") == ["C1", "C2"]
    assert await channels.release(enterprise_id="E1", team_id="T1") == []
    again = await channels.keeper(channel_id="C1", enterprise_id="", team_id="T2", now=NOW)
    assert again.team_id == "T2"  # chosen afresh by the installation still there
    assert await channels.release(enterprise_id="E1", team_id="") == ["C3"]  # an org-wide uninstall: the org's
    assert (await channels.keeper(channel_id="C4", enterprise_id="", team_id="T1", now=NOW)).team_id == "T9"


async def test_one_caller_at_a_time_claims_a_refresh_and_saves_only_over_what_it_refreshed(storage: Storage) -> None:
    store = storage.slack_installations
    await save(storage, installation("T1", ciphertext="old"))
    claim = {"enterprise_id": "", "team_id": "T1", "hold_s": 30.0}
    assert await store.claim_refresh(tokens_ciphertext="old", **claim) is True
    assert await store.claim_refresh(tokens_ciphertext="old", **claim) is False  # held
    assert await store.claim_refresh(tokens_ciphertext="stale", **claim) is False  # not the stored tokens
    swap = {"enterprise_id": "", "team_id": "T1", "details_json": "{}", "now": NOW + timedelta(hours=1)}
    assert await store.replace_tokens(was_ciphertext="stale", tokens_ciphertext="lost", **swap) is False
    assert await store.replace_tokens(was_ciphertext="old", tokens_ciphertext="new", **swap) is True
    assert await store.replace_tokens(was_ciphertext="old", tokens_ciphertext="older", **swap) is False
    found = await store.find(enterprise_id="", team_id="T1")
    assert found is not None and found.tokens_ciphertext == "new" and found.installed_utc < found.updated_utc
    assert await store.claim_refresh(tokens_ciphertext="new", **claim) is True  # the save ended the old claim
    await store.release_refresh(enterprise_id="", team_id="T1", tokens_ciphertext="new")
    assert await store.claim_refresh(tokens_ciphertext="new", **claim) is True  # released: claimable at once
    expired = {"enterprise_id": "", "team_id": "T1", "hold_s": -1.0}
    await store.release_refresh(enterprise_id="", team_id="T1", tokens_ciphertext="new")
    assert await store.claim_refresh(tokens_ciphertext="new", **expired) is True
    assert await store.claim_refresh(tokens_ciphertext="new", **claim) is True  # a lapsed claim is taken over
    await save(storage, installation("T1", ciphertext="re-sealed"))  # a new key's start-up, while one refreshes
    assert await store.claim_refresh(tokens_ciphertext="re-sealed", **claim) is False  # the claim still holds
    assert await store.replace_tokens(was_ciphertext="re-sealed", tokens_ciphertext="refreshed", **swap) is True
    assert await store.claim_refresh(tokens_ciphertext="x", enterprise_id="", team_id="T404", hold_s=30) is False


async def test_two_workers_claiming_at_once_get_one_claim(storage: Storage, database_url: str) -> None:
    async with open_storage(database_url) as second:
        for n in range(10):
            team = f"T{n}"
            await save(storage, installation(team, ciphertext="sealed"))
            claims = await asyncio.gather(
                *(
                    s.slack_installations.claim_refresh(
                        enterprise_id="", team_id=team, tokens_ciphertext="sealed", hold_s=30
                    )
                    for s in (storage, second, storage, second)
                )
            )
            assert sorted(claims) == [False, False, False, True]
