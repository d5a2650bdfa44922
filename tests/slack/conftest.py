"""Fixtures for driving the real slack-bolt app against the loopback Slack."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from bots.app import open_router
from bots.config import Settings
from bots.router.threads import ThreadRouter
from bots.slack import SlackAdapter
from tests.conftest import MakeSettings
from tests.fakes.slack import FakeSlack
from tests.fakes.waiting import wait_until

SIGNING_SECRET = "test-signing-secret"


@dataclass
class SlackBot:
    adapter: SlackAdapter
    router: ThreadRouter
    settings: Settings
    fake: FakeSlack

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}/slack/events"


SlackBotFactory = Callable[..., AbstractAsyncContextManager[SlackBot]]


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def slack_bot(make_settings: MakeSettings, fake_slack: FakeSlack) -> SlackBotFactory:
    """``async with slack_bot() as bot``: a started adapter on a fresh router; leaving it is a shutdown.

    Entering again on the same test is a restart: same database, new process state.
    """

    @asynccontextmanager
    async def start(*, http: bool = False, **overrides: Any) -> AsyncIterator[SlackBot]:
        values: dict[str, Any] = {"slack_bot_token": "xoxb-test-token", "slack_api_url": fake_slack.api_url}
        if http:
            values |= {"slack_signing_secret": SIGNING_SECRET, "port": free_port()}
        else:
            values |= {"slack_app_token": "xapp-test-token"}
        settings = make_settings(**(values | overrides))
        async with open_router(settings) as router:
            adapter = SlackAdapter(settings=settings, router=router)
            await adapter.start()
            await router.resume("slack")
            if not http:
                await wait_until(lambda: fake_slack.connected > 0)
            try:
                yield SlackBot(adapter, router, settings, fake_slack)
            finally:
                await adapter.stop()

    return start
