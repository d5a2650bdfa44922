"""Two `threadkeeper run` workers on one Postgres: the thread's owner SIGKILLed while its approval card waits.

Worker A owns the thread and posts the approval card; worker B, a second real process on the same database,
is the one Slack delivers the next events to. A is killed with the card still pending, and the Allow click
reaches B at once, while A's lease has not run out yet: B hands the click to A (which is gone), follows it, and
once A's lease lapses decides it and resumes the turn itself. The call runs once, the answer is posted once, by
B, and no "Where were we?" card is needed. Each worker talks to the model with a key of its own, so the fake
model's request log says which worker asked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.bot_process import (
    ANSWER_S,
    SlackThread,
    bot_process,
    last_streamed,
    llm_env,
    sigkill,
    sigterm,
    tools_env,
)
from tests.fakes.llm import FakeLLM, ScriptedCall
from tests.fakes.mcp_server import calls_made
from tests.fakes.slack import FakeSlack
from tests.fakes.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # two cold starts, one after the other

KEY_A, KEY_B = "sk-worker-a", "sk-worker-b"


def asked_by(fake_llm: FakeLLM, index: int) -> str:
    """Which worker sent the model's request number ``index`` (``A`` or ``B``)."""
    header = fake_llm.requests[index].headers.get("Authorization", "")
    return "A" if KEY_A in header else "B" if KEY_B in header else header


async def test_an_approval_whose_owner_was_sigkilled_is_resumed_by_the_worker_that_gets_the_click(
    tmp_path: Path, fake_llm: FakeLLM, postgres_url: str
) -> None:
    calls = tmp_path / "calls.txt"
    async with FakeSlack() as fake:
        thread = SlackThread(fake)
        env = llm_env(fake_llm, tmp_path) | tools_env(tmp_path, calls) | thread.env()
        env |= {"DATABASE_URL": postgres_url, "WORKER_LEASE_S": "5", "WORKER_POLL_S": "0.5"}
        async with bot_process(env | {"LLM_API_KEY": KEY_A}, tmp_path / "a.log") as a:
            await thread.connected(1)
            fake_llm.reply("Hello.")
            await thread.open("hi")  # only A is connected: A takes the thread
            await wait_until(lambda: thread.said("Hello."), timeout=ANSWER_S, what="the first answer")
            async with bot_process(env | {"LLM_API_KEY": KEY_B}, tmp_path / "b.log") as b:
                await thread.connected(2, live=2)  # from now on Slack delivers to B
                fake_llm.call_tools(ScriptedCall("fake__create_ticket", {"title": "Failover"}, id="call_failover"))
                await thread.say("file a ticket")  # B logs it and wakes A, the owner
                await thread.approval_card()
                assert [asked_by(fake_llm, i) for i in range(len(fake_llm.requests))] == ["A", "A"]
                await sigkill(a)

                fake_llm.reply("SUMMARY: Alice said hi.")
                fake_llm.reply("Failover ticket filed.")
                await thread.click("allow")  # reaches B, while A's lease still stands
                await wait_until(lambda: thread.said("Failover ticket filed."), timeout=ANSWER_S, what="the answer")
                assert thread.where_were_we_cards() == 0
                assert thread.private_notes() == []
                await sigterm(b)
    assert calls_made(calls) == ["create_ticket Failover"]  # one call, run by B
    assert asked_by(fake_llm, -1) == "B"
    answers = [c for c in fake.posts() if fake.final_text(str(c.params["_ts"])) == "Failover ticket filed."]
    assert len(answers) == 1
    sent = last_streamed(fake_llm)
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[2]["tool_call_id"] == "call_failover" and "created ticket #1: Failover" in sent[2]["content"]
