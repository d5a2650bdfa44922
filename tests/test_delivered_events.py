"""Delivery records are pruned once they are old and done: at start-up, then about hourly (issue 14, item 13)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import bots.operator.housekeeping as housekeeping
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows, running_router, thread_key


def age(path: Path, event_key: str) -> None:
    """Make a delivery look eight days old, as a long-running bot's first ones are."""
    with sqlite3.connect(path) as connection:
        connection.execute(
            "UPDATE delivered_events SET received_utc = strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now', '-8 days') "
            "WHERE event_key = ?",
            (event_key,),
        )


def event_keys(path: Path) -> list[str]:
    return [r[0] for r in db_rows(path, "SELECT event_key FROM delivered_events ORDER BY event_key")]


async def test_old_handled_deliveries_are_pruned_at_start_up_and_then_periodically(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_router(make_settings()) as bot:
        await bot.say("we chose Postgres", event_key="Ev-answered")
    async with running_router(make_settings()) as bot:
        await bot.say("what did we choose?", event_key="Ev-waiting")  # orphaned: a card, the message waits
        await bot.say("a new thread", thread=thread_key("t2"), event_key="Ev-recent")
        assert len(bot.outbox.cards_posted) == 1
    assert event_keys(db_path) == ["Ev-answered", "Ev-recent", "Ev-waiting"]
    age(db_path, "Ev-answered")
    age(db_path, "Ev-waiting")

    monkeypatch.setattr(housekeeping, "INTERVAL_S", 0.05)
    async with running_router(make_settings()):
        # At start-up: the old handled one goes; the old one whose message still waits stays, as does the recent.
        assert event_keys(db_path) == ["Ev-recent", "Ev-waiting"]
        age(db_path, "Ev-recent")
        await wait_until(lambda: event_keys(db_path) == ["Ev-waiting"], what="the housekeeping round")
