"""Slack installations and OAuth states, on each backend: one row per workspace, replaced on reinstall, gone for
good on uninstall (no row version left behind on Postgres either), and states good once, before they expire."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from storage.backends import Backend, Storage
from storage.records import SlackInstallation, iso
from tests.storage_contract.conftest import NOW
from tests.storage_contract.test_erasure import _tuples_holding


def installation(team: str, *, ciphertext: str = "gAAAA-sealed", enterprise: str = "") -> SlackInstallation:
    return SlackInstallation(
        enterprise_id=enterprise, team_id=team, team_name=f"Team {team}", bot_user_id=f"U{team}",
        bot_scopes="chat:write,users:read", details_json='{"app_id": "A1"}', tokens_ciphertext=ciphertext,
        installed_utc=iso(NOW), updated_utc=iso(NOW),
    )  # fmt: skip


async def save(storage: Storage, record: SlackInstallation) -> None:
    await storage.slack_installations.save(
        enterprise_id=record.enterprise_id, team_id=record.team_id, team_name=record.team_name,
        bot_user_id=record.bot_user_id, bot_scopes=record.bot_scopes, details_json=record.details_json,
        tokens_ciphertext=record.tokens_ciphertext, now=datetime.fromisoformat(record.updated_utc),
    )  # fmt: skip


async def test_an_installation_is_found_by_its_team_and_replaced_by_a_reinstall(storage: Storage) -> None:
    store = storage.slack_installations
    await save(storage, installation("T1", ciphertext="first"))
    await save(storage, installation("T2"))
    assert (await store.find(enterprise_id="", team_id="T1")) == installation("T1", ciphertext="first")
    later = replace(installation("T1", ciphertext="second"), updated_utc=iso(NOW + timedelta(days=1)))
    await save(storage, later)
    found = await store.find_team(team_id="T1")
    assert found is not None and found.tokens_ciphertext == "second"
    assert found.installed_utc == iso(NOW) and found.updated_utc == iso(NOW + timedelta(days=1))
    assert [i.team_id for i in await store.all()] == ["T1", "T2"]
    assert await store.find(enterprise_id="E1", team_id="T1") is None


async def test_an_org_wide_install_is_its_own_row(storage: Storage) -> None:
    store = storage.slack_installations
    await save(storage, installation("", enterprise="E1"))
    assert await store.find(enterprise_id="E1", team_id="") is not None
    assert await store.find_team(team_id="T1") is None


async def test_an_uninstall_leaves_no_copy_of_the_tokens(storage: Storage) -> None:
    store = storage.slack_installations
    sealed = "gAAAAsealed-token-bytes-8d1f"
    await save(storage, installation("T1", ciphertext=sealed))
    await save(storage, installation("T2"))
    if storage.backend is Backend.POSTGRES:
        assert await _tuples_holding(storage, sealed) > 0
    assert await store.delete(enterprise_id="", team_id="T1") is True
    assert await store.find_team(team_id="T1") is None
    assert await store.delete(enterprise_id="", team_id="T1") is False
    assert [i.team_id for i in await store.all()] == ["T2"]
    if storage.backend is Backend.POSTGRES:  # SQLite's file: tests/slack/test_slack_distribution.py
        assert await _tuples_holding(storage, sealed) == 0


async def test_a_state_is_good_once_and_only_before_it_expires(storage: Storage) -> None:
    states = storage.oauth_states
    await states.issue(state="s1", expires=NOW + timedelta(minutes=10))
    await states.issue(state="s2", expires=NOW + timedelta(minutes=10))
    assert await states.consume(state="nope", now=NOW) is False
    assert await states.consume(state="s1", now=NOW) is True
    assert await states.consume(state="s1", now=NOW) is False  # reused
    assert await states.consume(state="s2", now=NOW + timedelta(minutes=11)) is False  # expired


async def test_scopes_and_names_survive_the_round_trip(storage: Storage) -> None:
    await save(storage, installation("T1"))
    found = await storage.slack_installations.find_team(team_id="T1")
    assert found is not None
    assert (found.team_name, found.bot_user_id, found.bot_scopes) == ("Team T1", "UT1", "chat:write,users:read")
