"""An approval card outlives a SIGKILL: clicked after the restart, on Slack and Discord, as a real process.

The bot posts an approval card for a side-effecting call and is killed before anyone clicks. The next process
finds the click on a card no live turn waits on: Allow runs the call once (the fake MCP server counts every call
that really ran, across processes), Deny tells the model it was refused, and after ``APPROVAL_TIMEOUT_S`` the
click is told the request is over and the turn goes on as refused. In every case the turn resumes by itself:
the answer is posted and no "Where were we?" card is asked for in that thread. (The Discord Allow case on both
backends is in ``tests/test_kill_and_restart.py``.)
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.bot_process import (
    ANSWER_S,
    DiscordThread,
    PlatformThread,
    SlackThread,
    bot_process,
    last_streamed,
    llm_env,
    resumed,
    sigkill,
    sigterm,
    tools_env,
)
from tests.fakes.discord import FakeDiscord
from tests.fakes.llm import FakeLLM, ScriptedCall
from tests.fakes.mcp_server import calls_made
from tests.fakes.slack import FakeSlack
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]  # a cold start, a SIGKILL, another cold start

TIMEOUT_S = 6.0  # APPROVAL_TIMEOUT_S of the timeout story: longer than posting the card and killing it


def platform(name: str) -> tuple[AbstractAsyncContextManager[Any], Callable[[Any], PlatformThread]]:
    """A loopback platform and the thread kind that talks to it."""
    if name == "slack":
        return FakeSlack(), SlackThread
    return FakeDiscord(), DiscordThread


def database_env(backend: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """Nothing more for SQLite (the file of ``llm_env``); a new Postgres database otherwise."""
    return {} if backend == "sqlite" else {"DATABASE_URL": str(request.getfixturevalue("postgres_url"))}


async def card_then_sigkill(thread: PlatformThread, fake_llm: FakeLLM, env: dict[str, str], log: Path) -> float:
    """Open a thread, have the model ask for ``create_ticket``, wait for the approval card, SIGKILL the bot.

    Returns when the card was seen (``time.monotonic()``)."""
    async with bot_process(env, log) as first:
        await thread.connected(1)
        fake_llm.reply("Hello.")
        await thread.open("hi")
        await wait_until(lambda: thread.said("Hello."), timeout=ANSWER_S, what="the first answer")
        fake_llm.call_tools(ScriptedCall("fake__create_ticket", {"title": "Later"}, id="call_later"))
        await thread.say("file a ticket")
        await thread.approval_card()
        seen = time.monotonic()
        await sigkill(first)
    return seen


def tool_message(fake_llm: FakeLLM) -> str:
    """The continuing request: the waiting message, the step with its call, then the call's outcome; that outcome."""
    sent = last_streamed(fake_llm)
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert [c["id"] for c in sent[1]["tool_calls"]] == ["call_later"] and sent[2]["tool_call_id"] == "call_later"
    return str(sent[2]["content"])


@pytest.mark.parametrize(
    ("where", "action", "backend"),
    [
        ("slack", "allow", "sqlite"),
        ("slack", "allow", "postgres"),
        ("slack", "deny", "sqlite"),
        ("discord", "deny", "sqlite"),
    ],
)
async def test_an_approval_card_posted_before_a_sigkill_is_decided_after_the_restart(
    tmp_path: Path, fake_llm: FakeLLM, request: pytest.FixtureRequest, where: str, action: str, backend: str
) -> None:
    log, calls = tmp_path / "bot.log", tmp_path / "calls.txt"
    fake, kind = platform(where)
    async with fake:
        thread = kind(fake)
        env = llm_env(fake_llm, tmp_path) | tools_env(tmp_path, calls) | database_env(backend, request) | thread.env()
        await card_then_sigkill(thread, fake_llm, env, log)
        async with bot_process(env, log) as second:
            await thread.connected(2)
            await resumed(log, 2)
            fake_llm.reply("SUMMARY: Alice said hi.")
            fake_llm.reply("Here is where the ticket stands.")
            await thread.click(action)
            await wait_until(lambda: thread.said("Here is where the ticket stands."), timeout=ANSWER_S, what="answer")
            assert thread.where_were_we_cards() == 0  # the click chose to go on: no "Where were we?" card
            assert thread.private_notes() == []  # the clicker's decision counted; nothing to tell them
            await sigterm(second)
    outcome = tool_message(fake_llm)
    if action == "allow":
        assert calls_made(calls) == ["create_ticket Later"]  # run once, by the second process
        assert "created ticket #1: Later" in outcome
    else:
        assert calls_made(calls) == []  # never run
        assert "was refused by Alice" in outcome and "It did not run" in outcome


@pytest.mark.parametrize("where", ["slack", "discord"])
async def test_a_click_after_the_approval_timed_out_across_a_sigkill_runs_nothing_and_the_turn_goes_on(
    tmp_path: Path, fake_llm: FakeLLM, where: str
) -> None:
    log, calls = tmp_path / "bot.log", tmp_path / "calls.txt"
    fake, kind = platform(where)
    async with fake:
        thread = kind(fake)
        env = llm_env(fake_llm, tmp_path) | tools_env(tmp_path, calls) | thread.env()
        env |= {"APPROVAL_TIMEOUT_S": str(TIMEOUT_S)}
        seen = await card_then_sigkill(thread, fake_llm, env, log)
        assert time.monotonic() - seen < TIMEOUT_S  # the first process died with the card still pending
        async with bot_process(env, log) as second:
            await thread.connected(2)
            await resumed(log, 2)
            await wait_until(lambda: time.monotonic() > seen + TIMEOUT_S + 1, timeout=TIMEOUT_S + 2, what="timeout")
            fake_llm.reply("SUMMARY: Alice said hi.")
            fake_llm.reply("Nobody approved the ticket in time, so I did not file it.")
            await thread.click("allow")
            await wait_until(lambda: thread.said("so I did not file it."), timeout=ANSWER_S, what="the answer")
            [note] = thread.private_notes()
            assert re.search(r"timed out|expired", note) and "not" in note  # the click is told; nothing ran
            assert not thread.card_shows("Allowed")
            await sigterm(second)
    assert calls_made(calls) == []  # Allow after the timeout runs nothing
    outcome = tool_message(fake_llm)
    assert "was refused" in outcome and "It did not run" in outcome


@pytest.mark.parametrize(("where", "backend"), [("slack", "sqlite"), ("slack", "postgres"), ("discord", "sqlite")])
async def test_sigterm_while_a_card_waits_leaves_it_pending_and_the_next_process_resumes_on_the_click(
    tmp_path: Path, fake_llm: FakeLLM, request: pytest.FixtureRequest, where: str, backend: str
) -> None:
    """A deploy while a turn only waits for a click: the process exits without spending the adapters' grace on
    it (the log never says in-flight replies were still running), the card stays pending, and the click after the
    restart runs the call once."""
    log, calls = tmp_path / "bot.log", tmp_path / "calls.txt"
    fake, kind = platform(where)
    async with fake:
        thread = kind(fake)
        env = llm_env(fake_llm, tmp_path) | tools_env(tmp_path, calls) | database_env(backend, request) | thread.env()
        async with bot_process(env, log) as first:
            await thread.connected(1)
            fake_llm.reply("Hello.")
            await thread.open("hi")
            await wait_until(lambda: thread.said("Hello."), timeout=ANSWER_S, what="the first answer")
            fake_llm.call_tools(ScriptedCall("fake__create_ticket", {"title": "Later"}, id="call_later"))
            await thread.say("file a ticket")
            await thread.approval_card()
            await sigterm(first)
        text = log.read_text(errors="replace")
        assert "did not finish within" not in text  # the grace was not spent waiting for the click
        assert "shutting down" in text
        if backend == "sqlite":
            assert [tuple(r) for r in db_rows(tmp_path / "bot.db", "SELECT state FROM approvals")] == [("pending",)]
            assert [tuple(r) for r in db_rows(tmp_path / "bot.db", "SELECT state FROM tool_calls")] == [("waiting",)]
        assert not thread.card_shows("Allowed") and not thread.card_shows("Nobody answered")
        async with bot_process(env, log) as second:
            await thread.connected(2)
            await resumed(log, 2)
            fake_llm.reply("SUMMARY: Alice said hi.")
            fake_llm.reply("Filed the ticket for later.")
            await thread.click("allow")
            await wait_until(lambda: thread.said("Filed the ticket for later."), timeout=ANSWER_S, what="answer")
            assert thread.where_were_we_cards() == 0
            assert thread.card_shows("Allowed by Alice.")
            await sigterm(second)
    assert calls_made(calls) == ["create_ticket Later"]  # run once, by the second process
    assert "created ticket #1: Later" in tool_message(fake_llm)
