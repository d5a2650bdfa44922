"""Slack in many workspaces, as the tests drive it: the adapter in OAuth mode on a fresh router, and a browser's
"Add to Slack" through the real bolt OAuth flow against the loopback Slack (tests/fakes/slack.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
from cryptography.fernet import Fernet

from bots.app import PlatformStores, open_router
from bots.slack import SlackAdapter
from tests.conftest import MakeSettings
from tests.fakes.slack import BOT_USER, FakeSlack, Payloads
from tests.slack.conftest import SIGNING_SECRET, SlackBot, free_port

KEY = Fernet.generate_key().decode()
FIRST_ANSWER_S = 30.0  # a test's first answer waits for litellm's import (seconds on a busy machine)
DistributedBot = Callable[..., AbstractAsyncContextManager[SlackBot]]


def distributed_bots(make_settings: MakeSettings, fake_slack: FakeSlack) -> DistributedBot:
    """``async with distributed_bot() as bot``: the Slack adapter in OAuth mode (HTTP), on a fresh router (each
    call one more; with ``database_url=`` a Postgres database, several are several workers)."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[SlackBot]:
        client_id, client_secret = fake_slack.client_credentials
        values: dict[str, Any] = {
            "slack_client_id": client_id,
            "slack_client_secret": client_secret,
            "slack_signing_secret": SIGNING_SECRET,
            "token_encryption_key": KEY,
            "slack_api_url": fake_slack.api_url,
            "port": free_port(),
        }
        settings = make_settings(**(values | overrides))
        stores = PlatformStores()
        async with open_router(settings, platform_stores=stores) as router:
            adapter = SlackAdapter(
                settings=settings,
                router=router,
                installations=stores.slack_installations,
                oauth_states=stores.oauth_states,
                shared_channels=stores.slack_shared_channels,
            )
            await adapter.start()
            await router.resume("slack")
            try:
                yield SlackBot(adapter, router, settings, fake_slack)
            finally:
                await adapter.stop()

    return start


def base_url(bot: SlackBot | str) -> str:
    """The bot's web server; a ``threadkeeper run`` process is named by its URL."""
    if isinstance(bot, str):
        return bot
    return f"http://127.0.0.1:{bot.settings.port}"


async def begin_install(bot: SlackBot | str) -> tuple[str, str, str]:
    """GET /slack/install as a browser: the Add to Slack link's state, the state cookie, and the link."""
    async with aiohttp.ClientSession() as session, session.get(base_url(bot) + "/slack/install") as response:
        assert response.status == 200
        page = await response.text()
        cookie = response.headers.getall("Set-Cookie")[0].split(";")[0]
    link = re.search(r'href="(https://slack.com/oauth/v2/authorize[^"]+)"', page)
    assert link is not None, page
    state = re.search(r"state=([^&]+)", link.group(1))
    assert state is not None
    return state.group(1), cookie, link.group(1).replace("&amp;", "&")


async def finish_install(bot: SlackBot | str, *, code: str, state: str, cookie: str) -> tuple[int, str]:
    """Slack's redirect back to /slack/oauth_redirect after someone clicked Allow."""
    url = f"{base_url(bot)}/slack/oauth_redirect?code={code}&state={state}"
    async with aiohttp.ClientSession() as session, session.get(url, headers={"Cookie": cookie}) as response:
        return response.status, await response.text()


async def install(bot: SlackBot | str, fake: FakeSlack, team: str, **workspace: Any) -> None:
    state, cookie, _ = await begin_install(bot)
    status, page = await finish_install(bot, code=fake.install_code(team, **workspace), state=state, cookie=cookie)
    assert status == 200 and "Thank you!" in page, page


def mention_in(team: str, text: str, **kwargs: Any) -> dict[str, Any]:
    event = Payloads.mention(text, team=team, **kwargs)
    event["text"] = event["text"].replace(f"<@{BOT_USER}>", f"<@UBOT{team}>")
    return event


def event_for(team: str, event: dict[str, Any]) -> dict[str, Any]:
    body = Payloads.event_body(event, team=team)
    body["authorizations"][0]["user_id"] = f"UBOT{team}"
    return body


def replies(fake: FakeSlack, thread_ts: str) -> list[Any]:
    """The bot's posts in the thread whose text is an answer by now (cards excluded)."""
    posts = [c for c in fake.posts(thread_ts=thread_ts) if not c.params.get("blocks")]
    return [c for c in posts if fake.final_text(c.params["_ts"]) not in ("", "_Thinking…_")]
