"""`threadkeeper run` as a real process against the fakes: SIGKILL mid-reply, start again, get the card.

Nothing is shut down politely here: the process dies while it is streaming an answer, exactly as on an OOM kill
or a power cut, and the next process must find the thread orphaned, log nothing twice, and still answer.
"""

from __future__ import annotations

import asyncio
import signal
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from tests.fakes.discord import FakeDiscord
from tests.fakes.llm import FakeLLM
from tests.fakes.process import child_process
from tests.fakes.settings import fake_model_env
from tests.fakes.slack import FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def bot_process(env: dict[str, str], log: Path) -> AbstractAsyncContextManager[asyncio.subprocess.Process]:
    return child_process(["-m", "bots", "run"], env | {"LOG_LEVEL": "INFO"}, log=log)


def llm_env(fake_llm: FakeLLM, tmp_path: Path) -> dict[str, str]:
    return fake_model_env(fake_llm.base_url, tmp_path / "bot.db")


async def test_discord_process_killed_mid_reply_restarts_into_the_card(tmp_path: Path, fake_llm: FakeLLM) -> None:
    log = tmp_path / "bot.log"
    async with FakeDiscord() as fake:
        env = llm_env(fake_llm, tmp_path) | {
            "DISCORD_TOKEN": "fake-token",
            "DISCORD_API_BASE": fake.api_base,
            "DISCORD_GATEWAY_URL": fake.gateway_url,
        }
        fake_llm.chunk_delay_s = 0.2
        fake_llm.reply("This answer streams slowly and will never finish because the process dies. " * 3)
        async with bot_process(env, log) as first:
            await wait_until(lambda: fake.identified == 1, timeout=60)
            message = await fake.user_says("tell me a long story", mention_bot=True)
            thread = str(message["id"])
            # mid-stream: part of the slow answer is shown, so the model has its request
            await wait_until(
                lambda: any(t.startswith("This answer streams") for t in fake.texts_in(thread)), timeout=30
            )
            first.send_signal(signal.SIGKILL)
            assert await first.wait() == -signal.SIGKILL
        fake_llm.chunk_delay_s = 0.0
        async with bot_process(env, log) as second:
            await wait_until(lambda: fake.identified == 2, timeout=60)
            await fake.user_says("are you back?", channel_id=thread)
            await wait_until(lambda: len(fake.cards_in(thread)) == 1, timeout=30)
            card = fake.cards_in(thread)[0]
            fake_llm.reply("Yes, starting fresh.")
            custom_id = next(
                b["custom_id"]
                for row in card["components"]
                for b in row["components"]
                if b["custom_id"].endswith("fresh")
            )
            await fake.click(custom_id, message=card)
            await wait_until(lambda: "Yes, starting fresh." in fake.texts_in(thread), timeout=30)
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), timeout=30) == 0
    users = db_rows(tmp_path / "bot.db", "SELECT content, reply_state FROM messages WHERE role = 'user' ORDER BY id")
    assert [tuple(r) for r in users] == [("tell me a long story", "answered"), ("are you back?", "answered")]
    assert "fake-token" not in log.read_text()
    assert db_rows(tmp_path / "bot.db", "PRAGMA integrity_check")[0][0] == "ok"


async def test_slack_process_killed_mid_reply_restarts_into_the_card(tmp_path: Path, fake_llm: FakeLLM) -> None:
    log = tmp_path / "bot.log"
    async with FakeSlack() as fake:
        env = llm_env(fake_llm, tmp_path) | {
            "SLACK_BOT_TOKEN": "xoxb-secret-token",
            "SLACK_APP_TOKEN": "xapp-secret-token",
            "SLACK_API_URL": fake.api_url,
        }
        fake_llm.reply("Once upon a time there was a queue.")
        mention = Payloads.mention("tell me a story")
        async with bot_process(env, log) as first:
            await wait_until(lambda: fake.connected == 1, timeout=60)
            await fake.send(Payloads.event_body(mention))
            await wait_until(
                lambda: any(
                    fake.final_text(c.params["_ts"]) == "Once upon a time there was a queue." for c in fake.posts()
                ),
                timeout=30,
            )
            fake_llm.chunk_delay_s = 0.2
            fake_llm.reply("A slow answer that the SIGKILL interrupts halfway through its sentences. " * 3)
            await fake.send(Payloads.event_body(Payloads.message("and then?", thread_ts=mention["ts"])))
            # mid-stream: part of the slow answer is shown (an update may come earlier, for the status line), so the
            # model has its request and the catch-up below cannot be handed the slow answer
            await wait_until(
                lambda: any(fake.final_text(c.params["_ts"]).startswith("A slow answer") for c in fake.posts()),
                timeout=30,
            )
            first.send_signal(signal.SIGKILL)
            await first.wait()
        fake_llm.chunk_delay_s = 0.0
        async with bot_process(env, log) as second:
            await wait_until(
                lambda: fake.connected == 1 and len(fake.calls_to("apps.connections.open")) == 2, timeout=60
            )
            await fake.send(Payloads.event_body(Payloads.message("are you back?", thread_ts=mention["ts"])))
            await wait_until(lambda: any(c.params.get("blocks") for c in fake.posts()), timeout=30)
            card = next(c for c in fake.posts() if c.params.get("blocks"))
            value = card.params["blocks"][1]["elements"][0]["value"]
            fake_llm.reply("SUMMARY: Alice asked for a story about a queue.")
            fake_llm.reply("Caught up: the queue story continues.")
            await fake.send(Payloads.click(value, thread_ts=mention["ts"]), kind="interactive")
            await wait_until(
                lambda: any(
                    fake.final_text(c.params["_ts"]) == "Caught up: the queue story continues." for c in fake.posts()
                ),
                timeout=30,
            )
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), timeout=30) == 0
    users = db_rows(tmp_path / "bot.db", "SELECT content, reply_state FROM messages WHERE role = 'user' ORDER BY id")
    assert [tuple(r) for r in users] == [
        ("tell me a story", "answered"),
        ("and then?", "answered"),
        ("are you back?", "answered"),
    ]
    assert len([c for c in fake.posts() if c.params.get("blocks")]) == 1
    summary = next(r for r in fake_llm.requests if not r.stream)
    assert "tell me a story" in summary.prompt_text and "and then?" not in summary.prompt_text
    assert [m["content"] for m in fake_llm.requests[-1].body["messages"][-2:]] == [
        "Alice: and then?",
        "Alice: are you back?",
    ]
    text = log.read_text()
    assert "xoxb-secret-token" not in text and "xapp-secret-token" not in text
