"""`threadkeeper run` on Slack as a real process: killed before it acknowledged an event, restarted, redelivered.

Slack redelivers an envelope that was never acknowledged. The bot acknowledges an event only after logging it,
so a process that dies in between must leave nothing behind, and the next process must take the redelivery as
new: log it once, see the thread is orphaned, show the card, and answer it after "Catch me up". A second
redelivery of the same event after that changes nothing.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.fakes.llm import FakeLLM
from tests.fakes.process import child_process
from tests.fakes.settings import fake_model_env
from tests.fakes.slack import FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows

pytestmark = pytest.mark.slow


def _env(fake: FakeSlack, llm: FakeLLM, db: Path) -> dict[str, str]:
    return fake_model_env(
        llm.base_url,
        db,
        SLACK_BOT_TOKEN="xoxb-process-secret",
        SLACK_APP_TOKEN="xapp-process-secret",
        SLACK_API_URL=fake.api_url,
        LOG_LEVEL="INFO",
    )


def _replies(fake: FakeSlack, thread_ts: str) -> list[str]:
    return [fake.final_text(c.params["_ts"]) for c in fake.posts(thread_ts=thread_ts) if not c.params.get("blocks")]


async def test_killed_before_the_ack_then_the_redelivered_event_gets_the_card_and_an_answer(
    tmp_path: Path, fake_llm: FakeLLM
) -> None:
    db, log = tmp_path / "bot.db", tmp_path / "bot.log"
    mention = Payloads.mention("we ship on Friday", channel="C5")
    follow_up = Payloads.message("so when do we ship?", user="UBOB", channel="C5", thread_ts=mention["ts"])
    follow_up_body = Payloads.event_body(follow_up)
    async with FakeSlack() as fake:
        env = _env(fake, fake_llm, db)
        fake_llm.reply("Noted: Friday.")
        async with child_process(["-m", "bots", "run"], env, log=log) as first:
            await wait_until(lambda: fake.connected == 1, timeout=60)
            await fake.send(Payloads.event_body(mention))
            await wait_until(lambda: _replies(fake, mention["ts"]) == ["Noted: Friday."], timeout=30)
            # Bob's name is not cached yet: the listener waits on users.info, the ack has not gone out.
            fake.delays_s["users.info"] = 1.0
            envelope = await fake.send(follow_up_body)
            await wait_until(lambda: any(c.params.get("user") == "UBOB" for c in fake.calls_to("users.info")))
            first.send_signal(signal.SIGKILL)
            await first.wait()
        assert envelope not in fake.acks
        assert [r["content"] for r in db_rows(db, "SELECT content FROM messages WHERE role = 'user'")] == [
            "we ship on Friday"
        ]

        fake.delays_s.clear()
        async with child_process(["-m", "bots", "run"], env, log=log) as second:
            await wait_until(lambda: fake.connected == 1 and len(fake.calls_to("apps.connections.open")) == 2, 60)
            assert await fake.redeliver_unacked() == 1
            await wait_until(lambda: any(c.params.get("blocks") for c in fake.posts()), timeout=30)
            card = next(c for c in fake.posts() if c.params.get("blocks"))
            assert card.params["thread_ts"] == mention["ts"] and card.params["channel"] == "C5"
            catch_up = card.params["blocks"][1]["elements"][0]["value"]
            fake_llm.reply("SUMMARY: the team ships on Friday.")
            fake_llm.reply("On Friday.")
            await fake.send(fake.click_on(catch_up, user="UBOB"), kind="interactive")
            await wait_until(lambda: "On Friday." in _replies(fake, mention["ts"]), timeout=30)
            retry = await fake.send(follow_up_body, retry_attempt=2)  # Slack's next retry, now after the ack: a no-op
            await wait_until(lambda: retry in fake.acks, timeout=30)  # handled (acked after the listener)
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), timeout=30) == 0

    users = db_rows(db, "SELECT author_name, content, reply_state FROM messages WHERE role = 'user' ORDER BY id")
    assert [tuple(r) for r in users] == [
        ("Alice", "we ship on Friday", "answered"),
        ("Bob", "so when do we ship?", "answered"),
    ]
    assert _replies(fake, mention["ts"]) == ["Noted: Friday.", "On Friday."]
    assert len([c for c in fake.posts() if c.params.get("blocks")]) == 1
    summary = next(r for r in fake_llm.requests if not r.stream)
    assert "we ship on Friday" in summary.prompt_text
    assert fake_llm.requests[-1].body["messages"][-1]["content"] == "Bob: so when do we ship?"
    text = log.read_text()
    assert "xoxb-process-secret" not in text and "xapp-process-secret" not in text
