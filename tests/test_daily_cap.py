"""USER_DAILY_TOKENS holds for every person a turn answers, at every model step, and across threads."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from agent.llm import ModelCall, Usage
from bots.operator.usage import CAP_NOTE, STEP_CAP_NOTE, UsageRecorder
from bots.seam.messages import Author
from storage.backends import open_storage
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM, ScriptedCall
from tests.fakes.waiting import wait_until
from tests.router_harness import BOB, db_rows, message, running_router, thread_key

CAROL = Author(id="U-carol", display_name="Carol")
CAP = 30  # tokens: one answer of the fake model (it reports characters / 4) spends more than this


def notes(texts: list[tuple[object, str]]) -> list[str]:
    return [text for _, text in texts]


async def test_a_capped_persons_question_is_not_answered_when_someone_else_writes_after_it(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with running_router(make_settings(user_daily_tokens=CAP)) as bot:
        fake_llm.reply("A first answer that spends Alice's whole allowance for today.")
        await bot.say("First question, long enough to cost some tokens by itself")
        await bot.say("What is the secret launch date?")  # Alice is over her cap now
        fake_llm.reply("Hello Bob.")
        await bot.say("Bob here, hello", author=BOB)
    assert notes(bot.outbox.notices) == [CAP_NOTE.format(cap=CAP)]
    assert bot.outbox.replies_in(thread_key())[-1] == "Hello Bob."
    assert len(fake_llm.requests) == 2
    assert "secret launch date" not in fake_llm.requests[1].prompt_text  # not answered through Bob's turn
    waiting = db_rows(db_path, "SELECT content FROM messages WHERE reply_state = 'waiting'")
    assert [r["content"] for r in waiting] == ["What is the secret launch date?"]
    assert [r["user_id"] for r in db_rows(db_path, "SELECT user_id FROM usage ORDER BY id")] == ["U-alice", "U-bob"]


async def test_a_capped_person_writing_after_someone_else_does_not_stop_that_answer(
    make_settings: MakeSettings, fake_llm: FakeLLM
) -> None:
    async with running_router(make_settings(user_daily_tokens=CAP)) as bot:
        fake_llm.reply("A first answer that spends Alice's whole allowance for today.")
        await bot.say("First question, long enough to cost some tokens by itself")
        fake_llm.reply("Carol's answer, written slowly.")
        fake_llm.reply("Bob's answer.")
        release = fake_llm.pause_after(5)
        await bot.router.handle_message(message("Carol asks something", author=CAROL))
        await wait_until(lambda: len(fake_llm.requests) == 2, what="Carol's answer under way")
        await bot.router.handle_message(message("Bob asks something", author=BOB))
        await bot.router.handle_message(message("And Alice asks again"))  # the newest waiting message is hers
        release.set()
        await bot.router.idle()
    assert bot.outbox.replies_in(thread_key())[-1] == "Bob's answer."
    assert "Bob asks something" in fake_llm.requests[2].prompt_text
    assert "Alice asks again" not in fake_llm.requests[2].prompt_text
    assert notes(bot.outbox.notices) == [CAP_NOTE.format(cap=CAP)]


async def test_a_tool_turn_stops_with_a_note_before_the_step_that_would_pass_the_cap(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    settings = make_settings(user_daily_tokens=CAP, llm_function_calling=True)
    async with running_router(settings) as bot:
        fake_llm.call_tools(ScriptedCall("search_thread", {"query": "launch"}))
        fake_llm.reply("An answer the cap never lets the model write.")
        await bot.say("Search this thread for the launch date, please")
    [reply] = bot.outbox.replies_in(thread_key())
    assert reply == STEP_CAP_NOTE.format(cap=CAP)
    assert len(fake_llm.requests) == 1  # the first step spent the allowance: no second request
    assert [r["user_id"] for r in db_rows(db_path, "SELECT user_id FROM usage")] == ["U-alice"]


async def test_a_call_not_written_yet_counts_against_the_cap_at_once(tmp_path: Path) -> None:
    """Parallel threads: a turn under way in one thread is counted before its usage reaches the database."""
    async with open_storage(f"sqlite:///{tmp_path}/usage.db") as storage:
        usage = UsageRecorder(storage.usage, daily_cap=100)
        thread_id = await storage.log.ensure_thread(
            platform="test", workspace="w1", channel="c1", thread="t1", title=None, now=datetime.now(UTC)
        )
        usage.begin(thread_id=thread_id, user_id="U-alice")
        assert not await usage.over_cap(user_id="U-alice")
        usage.observe(
            ModelCall(
                model="openai/fake",
                streamed=True,
                seconds=0.1,
                first_token_s=0.05,
                usage=Usage(prompt_tokens=80, completion_tokens=30),
                failure=None,
                request=[],
                reply="",
            )
        )
        assert await usage.over_cap(user_id="U-alice")  # other threads of hers are refused now
        assert not await usage.over_cap(user_id="U-bob")
        usage.settle()
        await usage.close()
        assert await usage.over_cap(user_id="U-alice")  # and still, once written
        since = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        assert await storage.usage.tokens_since(user_id="U-alice", since=since) == 110
