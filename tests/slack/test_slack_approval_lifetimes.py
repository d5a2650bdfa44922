"""An approval card across a shutdown and a restart, and its deadline by the database's clock, on Slack.

The real slack-bolt app in Socket Mode against the loopback Slack, the real router, the fake MCP server over stdio,
SQLite and Postgres. Each run here is a process's life in-process: ``open_router`` with the shutdown event
``threadkeeper run`` sets on SIGTERM, the adapter started, and the start-up pass (``router.resume``) run when the
story says: a click may come while a restarted bot is still starting. (The same stories as real processes, with
SIGKILL and SIGTERM: ``tests/test_kill_approvals.py``.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bots.app import open_router
from bots.router.threads import ThreadRouter
from bots.slack import SlackAdapter
from tests.conftest import MakeSettings
from tests.fakes.bot_process import SlackThread, last_streamed
from tests.fakes.llm import FakeLLM, ScriptedCall
from tests.fakes.mcp_server import calls_made, stdio_entry, write_config
from tests.fakes.slack import FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows
from tests.slack.test_slack_tool_flow import approval_posts

pytestmark = pytest.mark.slow  # each run starts an MCP server process

ANSWER_S = 30.0  # a first answer waits for litellm's import on a loaded machine


@dataclass
class Run:
    router: ThreadRouter
    adapter: SlackAdapter
    leaving: asyncio.Event


@dataclass
class Story:
    """One thread's story across runs: the fakes, the settings every run shares, where the MCP calls are counted."""

    fake: FakeSlack
    fake_llm: FakeLLM
    make_settings: MakeSettings
    overrides: dict[str, Any]
    calls: Path
    database: str  # the SQLite file's path or the Postgres URL

    @asynccontextmanager
    async def run(self, *, start_up: bool = True) -> AsyncIterator[Run]:
        """A process's life; ``start_up=False`` leaves the start-up pass to the test. Leaving it is a SIGTERM."""
        leaving = asyncio.Event()
        settings = self.make_settings(**self.overrides)
        async with open_router(settings, leaving=leaving) as router:
            adapter = SlackAdapter(settings=settings, router=router)
            await adapter.start()
            await wait_until(lambda: self.fake.connected == 1, what="the socket")
            if start_up:
                await router.resume("slack")
                await asyncio.wait_for(router.tools_settled(), timeout=30)
            try:
                yield Run(router, adapter, leaving)
            finally:
                leaving.set()
                await adapter.stop()

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if not self.database.startswith("postgres"):
            return [tuple(r) for r in db_rows(Path(self.database), sql)]
        with psycopg.connect(self.database) as connection:
            return [tuple(r) for r in connection.execute(sql).fetchall()]


@pytest.fixture(params=["sqlite", "postgres"])
def story(
    request: pytest.FixtureRequest,
    fake_slack: FakeSlack,
    fake_llm: FakeLLM,
    make_settings: MakeSettings,
    db_path: Path,
    tmp_path: Path,
) -> Story:
    calls = tmp_path / "calls.txt"
    config = write_config(tmp_path / "mcp.json", {"fake": stdio_entry(env={"FAKE_MCP_CALLS_FILE": str(calls)})})
    overrides: dict[str, Any] = {"mcp_config": config, "llm_function_calling": True}
    overrides |= {"slack_bot_token": "xoxb-test-token", "slack_api_url": fake_slack.api_url}
    overrides |= {"slack_app_token": "xapp-test-token"}
    database = str(db_path)
    if request.param == "postgres":
        database = str(request.getfixturevalue("postgres_url"))
        overrides["database_url"] = database
    return Story(fake_slack, fake_llm, make_settings, overrides, calls, database)


async def card_waits(story: Story, thread: SlackThread) -> None:
    """A first run: the thread is answered, then the model asks for ``create_ticket`` and its card is posted."""
    story.fake_llm.reply("Hello.")
    await thread.open("hi")
    await wait_until(lambda: thread.said("Hello."), timeout=ANSWER_S, what="the first answer")
    story.fake_llm.call_tools(ScriptedCall("fake__create_ticket", {"title": "Later"}, id="call_later"))
    await thread.say("file a ticket")
    await thread.approval_card()
    await wait_until(lambda: story.rows("SELECT state FROM tool_calls") == [("waiting",)], what="the waiting call")


async def test_a_click_while_the_restarted_bot_is_starting_resumes_the_turn_and_no_card_is_posted(
    story: Story,
) -> None:
    """The click decides the orphaned approval, then the start-up pass runs before the click has resumed the turn
    (the card's "Allowed by Alice." update is held by the fake): the pass leaves the thread to the click."""
    fake, thread = story.fake, SlackThread(story.fake)
    async with story.run():
        await card_waits(story, thread)
    # The SIGTERM above left the card pending and the call waiting on it, for the next run.
    assert story.rows("SELECT state FROM approvals") == [("pending",)]
    assert story.rows("SELECT state FROM tool_calls") == [("waiting",)]
    released = False
    fake.held_until["chat.update"] = lambda: released
    fake.held_s = 60.0
    async with story.run(start_up=False) as run:
        story.fake_llm.reply("SUMMARY: Alice said hi.")
        story.fake_llm.reply("Filed the ticket for later.")
        await thread.click("allow")
        shown = lambda: any("Allowed by Alice" in str(c.params) for c in fake.calls_to("chat.update"))  # noqa: E731
        await wait_until(shown, what="the click's decision shown")
        assert story.rows("SELECT state FROM approvals") == [("approved",)]  # decided; the turn not yet resumed
        await run.router.resume("slack")  # the start-up pass, while the click is between its decision and the turn
        await asyncio.wait_for(run.router.tools_settled(), timeout=30)  # the MCP server, connected by that pass
        released = True
        await wait_until(lambda: thread.said("Filed the ticket for later."), timeout=ANSWER_S, what="the answer")
        assert thread.where_were_we_cards() == 0  # never posted, not even for a moment
        assert thread.card_shows("Allowed by Alice.")
        assert thread.private_notes() == []
    assert calls_made(story.calls) == ["create_ticket Later"]  # run once
    sent = last_streamed(story.fake_llm)
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[2]["tool_call_id"] == "call_later" and "created ticket #1: Later" in sent[2]["content"]


TIMEOUT_S = 2.0  # short, and within the 5 s the fake holds a call


async def test_a_click_on_a_live_card_is_late_by_the_database_clock_though_the_wait_just_began(
    story: Story,
) -> None:
    """The card's post is held until its time is up by the database's clock: the process that posted it waits on,
    and Allow comes the moment the card shows. The database says the click is late: nothing runs, anywhere."""
    fake, fake_llm = story.fake, story.fake_llm
    story.overrides["approval_timeout_s"] = TIMEOUT_S
    async with story.run():
        thread = SlackThread(fake)
        fake_llm.reply("Hello.")
        await thread.open("hi")
        await wait_until(lambda: thread.said("Hello."), timeout=ANSWER_S, what="the first answer")
        posts_before = len(fake.calls_to("chat.postMessage"))

        def card_post_held() -> bool:
            """Release the next post (the card) once its approval is older than TIMEOUT_S: it was asked for before
            the post reached the fake, and this machine's clock runs as the database's does."""
            posts = fake.calls_to("chat.postMessage")[posts_before:]
            return bool(posts) and time.monotonic() > posts[0].at + TIMEOUT_S + 0.5

        fake.held_until["chat.postMessage"] = card_post_held
        fake_llm.call_tools(ScriptedCall("fake__create_ticket", {"title": "Late"}, id="call_late"))
        fake_llm.reply("Nobody approved it in time.")
        await thread.say("file a ticket")
        await wait_until(lambda: bool(approval_posts(fake, thread.ts)), timeout=ANSWER_S, what="the card")
        card = approval_posts(fake, thread.ts)[0]
        allow = next(
            str(e["value"])
            for b in card["blocks"]  # type: ignore[attr-defined]
            if b.get("type") == "actions"
            for e in b["elements"]
            if str(e["value"]).endswith("allow")
        )
        click = Payloads.click(allow, message_ts=str(card["_ts"]), thread_ts=thread.ts)
        await fake.send(click, kind="interactive")
        await wait_until(lambda: thread.said("Nobody approved it in time."), timeout=ANSWER_S, what="the answer")
        await wait_until(lambda: bool(fake.ephemerals()), what="the clicker's note")
    assert thread.private_notes() == ["That request timed out; the call was not made."]
    assert "Nobody answered in time" in str(fake.current_blocks(str(card["_ts"])))
    assert story.rows("SELECT state FROM approvals") == [("timed_out",)]
    assert calls_made(story.calls) == []
    sent = last_streamed(fake_llm)
    assert sent[-1]["tool_call_id"] == "call_late" and "nobody answered in time" in sent[-1]["content"]
