"""Slack in many workspaces with several workers on one Postgres database: two bolt apps (two routers, two
adapters in OAuth mode, each its own pool) against the loopback Slack, as ``--scale bot=3`` runs them.

A Slack Connect message whose two copies (one per installed workspace) reach two different workers is answered
once, whichever copy comes first or when both come at once; when the channel's keeper uninstalls, the other
workspace's copies are answered again (with its own token), also by a worker that had read the old keeper; and
two workers that see one expiring token at once spend its refresh token once and both use the new token.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from bots.slack.install.distribution import SlackDistribution
from storage.backends import open_storage
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads, post_event
from tests.fakes.waiting import wait_until
from tests.slack.conftest import SIGNING_SECRET, SlackBot
from tests.slack.distributed import FIRST_ANSWER_S, distributed_bots, event_for, install, mention_in, replies

HOST = "T1"  # the workspace whose org owns the shared channel
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def two_workers(make_settings: MakeSettings, fake_slack: FakeSlack, postgres_url: str) -> Any:
    start = distributed_bots(make_settings, fake_slack)

    @asynccontextmanager
    async def run() -> AsyncIterator[tuple[SlackBot, SlackBot]]:
        async with start(database_url=postgres_url) as first, start(database_url=postgres_url) as second:
            yield first, second

    return run


def shared_copy(event: dict[str, Any], installed: str) -> dict[str, Any]:
    """The copy of a Slack Connect channel's event that the installation in ``installed`` receives."""
    body = Payloads.shared_channel_body(event, host_team=HOST, installed_team=installed)
    body["authorizations"][0]["user_id"] = f"UBOT{installed}"
    return body


def distribution(bot: SlackBot) -> SlackDistribution:
    assert bot.adapter._distribution is not None
    return bot.adapter._distribution


async def idle(*bots: SlackBot) -> None:
    for bot in bots:
        await bot.router.idle()


async def test_a_slack_connect_message_whose_copies_reach_two_workers_is_answered_once(
    two_workers: Any, fake_slack: FakeSlack, fake_llm: FakeLLM, postgres_url: str
) -> None:
    async with two_workers() as (first, second):
        await install(first, fake_slack, "T1")
        await install(second, fake_slack, "T2")
        for _ in range(4):
            fake_llm.reply("answered")
        one_by_one = mention_in(HOST, "hello both orgs", channel="CSHARED")
        assert await post_event(first.events_url, SIGNING_SECRET, shared_copy(one_by_one, "T1")) == 200
        assert await post_event(second.events_url, SIGNING_SECRET, shared_copy(one_by_one, "T2")) == 200
        at_once = mention_in(HOST, "and both at once", channel="CSHARED2")
        statuses = await asyncio.gather(
            post_event(second.events_url, SIGNING_SECRET, shared_copy(at_once, "T2")),
            post_event(first.events_url, SIGNING_SECRET, shared_copy(at_once, "T1")),
        )
        assert statuses == [200, 200]
        for message in (one_by_one, at_once):
            await wait_until(lambda m=message: replies(fake_slack, m["ts"]), timeout=FIRST_ANSWER_S)  # type: ignore[misc]
        await idle(first, second)
    assert len(replies(fake_slack, one_by_one["ts"])) == 1
    assert len(replies(fake_slack, at_once["ts"])) == 1
    assert len([r for r in fake_llm.requests if r.stream]) == 2
    async with open_storage(postgres_url) as storage:
        rows = await storage.database.fetchall(  # type: ignore[attr-defined]
            "SELECT workspace, channel FROM threads WHERE platform = 'slack' ORDER BY channel"
        )
    assert [r["channel"] for r in rows] == ["CSHARED", "CSHARED2"]  # one thread each, under one workspace
    assert rows[0]["workspace"] == "T1"  # the first copy's installation keeps the channel


async def test_when_the_keeper_uninstalls_the_other_workspace_answers_the_shared_channel(
    two_workers: Any, fake_slack: FakeSlack, fake_llm: FakeLLM, postgres_url: str
) -> None:
    async with two_workers() as (first, second):
        await install(first, fake_slack, "T1")
        await install(first, fake_slack, "T2")
        fake_llm.reply("as T1")
        before = mention_in(HOST, "who keeps this channel?", channel="CSHARED")
        assert await post_event(first.events_url, SIGNING_SECRET, shared_copy(before, "T1")) == 200
        assert await post_event(second.events_url, SIGNING_SECRET, shared_copy(before, "T2")) == 200  # reads T1
        await wait_until(lambda: replies(fake_slack, before["ts"]), timeout=FIRST_ANSWER_S)
        await idle(first, second)
        fake_slack.uninstall("T1")
        uninstalled = event_for("T1", {"type": "app_uninstalled", "event_ts": "1.0"})
        assert await post_event(first.events_url, SIGNING_SECRET, uninstalled) == 200
        fake_llm.reply("as T2")
        after = mention_in("T2", "still there?", channel="CSHARED")  # only T2's copy comes now
        assert await post_event(second.events_url, SIGNING_SECRET, shared_copy(after, "T2")) == 200
        await wait_until(lambda: replies(fake_slack, after["ts"]), timeout=FIRST_ANSWER_S)
        await idle(first, second)
    t1, t2 = fake_slack.workspaces["T1"].tokens[0], fake_slack.workspaces["T2"].tokens[0]
    assert {c.token for c in replies(fake_slack, before["ts"])} == {t1}
    assert {c.token for c in replies(fake_slack, after["ts"])} == {t2}
    async with open_storage(postgres_url) as storage:
        keeper = await storage.slack_shared_channels.keeper(
            channel_id="CSHARED", enterprise_id="", team_id="T9", now=NOW
        )
    assert keeper.team_id == "T2"


async def test_two_workers_seeing_one_token_expire_at_once_refresh_it_once(
    two_workers: Any, fake_slack: FakeSlack, fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with two_workers() as (first, second):
        await install(first, fake_slack, "T1", rotation=True, expires_in_s=600)  # inside bolt's two-hour margin
        workspace = fake_slack.workspaces["T1"]
        workspace.expires_in_s = 43_200  # the refreshed token lasts twelve hours
        # The first worker's refresh is held at Slack until the second worker has read the installation: without
        # a shared refresh, the second would then spend the same refresh token again.
        second_read = asyncio.Event()
        installations = distribution(second).installations
        find_bot = installations.async_find_bot

        async def find_and_tell(**kwargs: Any) -> Any:
            found = await find_bot(**kwargs)
            second_read.set()
            return found

        monkeypatch.setattr(installations, "async_find_bot", find_and_tell)
        fake_slack.held_until["oauth.v2.access"] = second_read.is_set
        fake_llm.reply("one")
        fake_llm.reply("two")
        one, two = mention_in("T1", "first worker", channel="C1"), mention_in("T1", "second worker", channel="C2")
        to_first = asyncio.create_task(post_event(first.events_url, SIGNING_SECRET, event_for("T1", one)))
        await wait_until(lambda: refresh_grants(fake_slack), what="the first worker's refresh")
        assert await post_event(second.events_url, SIGNING_SECRET, event_for("T1", two)) == 200
        assert await to_first == 200
        for message in (one, two):
            await wait_until(lambda m=message: replies(fake_slack, m["ts"]), timeout=FIRST_ANSWER_S)  # type: ignore[misc]
        await idle(first, second)
        stored = [await distribution(bot).installations.find_for_team("T1") for bot in (first, second)]
    assert len(refresh_grants(fake_slack)) == 1 and len(workspace.tokens) == 2
    newest = workspace.tokens[-1]
    assert [bot.bot_token if bot else None for bot in stored] == [newest, newest]
    for message in (one, two):
        assert {c.token for c in replies(fake_slack, message["ts"])} == {newest}


def refresh_grants(fake: FakeSlack) -> list[Any]:
    return [c for c in fake.calls_to("oauth.v2.access") if c.params.get("grant_type") == "refresh_token"]
