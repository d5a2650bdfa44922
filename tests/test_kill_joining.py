"""`threadkeeper run` killed while it reads the history of a Slack thread a mention brought it into.

The mention was logged and acknowledged before the history was read (``bots/router/joining.py``), so Slack will
not send it again: the next process must find the join still open, read the history, log it before the mention
and answer the mention with it, once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.bot_process import ANSWER_S, bot_process, llm_env, sigkill, slack_env
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows
from tests.slack.test_slack_joining import PARENT, answers, people_talked
from tests.slack.test_slack_socket_mode import replies_in

DECIDED = "You settled on shipping Friday."
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # two cold starts of the bot on a loaded machine


async def test_a_mention_acked_before_a_kill_mid_history_is_answered_with_the_history_after_the_restart(
    tmp_path: Path, fake_llm: FakeLLM
) -> None:
    log = tmp_path / "bot.log"
    released: list[bool] = []
    async with FakeSlack() as fake:
        people_talked(fake, 4)
        fake_llm.reply(DECIDED)
        fake.held_until["conversations.replies"] = lambda: bool(released)
        env = llm_env(fake_llm, tmp_path) | slack_env(fake)
        async with bot_process(env, log) as first:
            await wait_until(lambda: fake.connected == 1, timeout=60)
            mention = await fake.send(Payloads.event_body(Payloads.mention("what did we decide?", thread_ts=PARENT)))
            await wait_until(lambda: mention in fake.acks, timeout=ANSWER_S, what="the mention acknowledged")
            await wait_until(lambda: bool(fake.calls_to("conversations.replies")), timeout=ANSWER_S)
            await sigkill(first)  # mid-read: the history is not logged, the mention is
        assert not fake.unacked  # Slack has nothing to send again
        rows = db_rows(tmp_path / "bot.db", "SELECT content, reply_state FROM messages ORDER BY id")
        assert [tuple(r) for r in rows] == [("what did we decide?", "waiting")]
        released.append(True)
        async with bot_process(env, log):
            await wait_until(lambda: replies_in(fake, PARENT) == [DECIDED], timeout=ANSWER_S, what="the answer")
    rows = db_rows(tmp_path / "bot.db", "SELECT content FROM messages WHERE role = 'user' ORDER BY id")
    assert [r["content"] for r in rows] == [f"point {i} about the release" for i in range(4)] + ["what did we decide?"]
    [prompt] = answers(fake_llm)
    assert prompt.index("point 0 ") < prompt.index("point 3 ") < prompt.index("what did we decide?")
    assert db_rows(tmp_path / "bot.db", "SELECT 1 FROM thread_joins") == []
