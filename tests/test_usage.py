"""Usage and cost: every answer and summary leaves a row, priced from litellm's local cost map after posting."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bots.seam.messages import CardAction
from storage.migrations import MIGRATIONS, migrate
from storage.sqlite.db import open_database
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM
from tests.fakes.settings import fake_model_env
from tests.router_harness import BOB, db_rows, running_router, thread_key
from tests.test_config_and_cli import run_cli

# litellm's bundled cost map: gpt-4o-mini at $0.15 / $0.60 per million tokens in / out.
GPT_4O_MINI_IN, GPT_4O_MINI_OUT = 0.15e-6, 0.60e-6


def usage_rows(db_path: Path) -> list[dict[str, object]]:
    return [dict(r) for r in db_rows(db_path, "SELECT * FROM usage ORDER BY id")]


async def test_an_answer_records_the_streamed_usage_and_its_cost(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply("Paris is the capital of France.")
    async with running_router(make_settings(llm_model="openai/gpt-4o-mini")) as bot:
        await bot.say("What is the capital of France?")
    [row] = usage_rows(db_path)
    request = fake_llm.requests[0]
    assert request.body["stream_options"] == {"include_usage": True}
    expected_in = sum(len(m["content"]) for m in request.body["messages"]) // 4 + 1  # what the fake reports
    expected_out = len("Paris is the capital of France.") // 4 + 1
    assert row["purpose"] == "answer" and row["user_id"] == "U-alice" and row["model"] == "openai/gpt-4o-mini"
    assert (row["prompt_tokens"], row["completion_tokens"], row["tokens_counted"]) == (expected_in, expected_out, 0)
    assert row["cost_usd"] == pytest.approx(expected_in * GPT_4O_MINI_IN + expected_out * GPT_4O_MINI_OUT)
    assert row["thread_id"] == db_rows(db_path, "SELECT id FROM threads")[0]["id"]


async def test_a_catch_up_summary_is_recorded_for_whoever_clicked_and_an_unpriced_model_has_no_cost(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with running_router(make_settings()) as bot:
        await bot.say("The budget is 10k.")
    async with running_router(make_settings()) as bot:
        await bot.say("What's the budget?")
        fake_llm.reply("SUMMARY: budget 10k.")
        fake_llm.reply("10k.")
        await bot.click(CardAction.CATCH_UP, user=BOB)
    rows = usage_rows(db_path)
    assert [(r["purpose"], r["user_id"]) for r in rows] == [
        ("answer", "U-alice"),
        ("summary", "U-bob"),
        ("answer", "U-alice"),
    ]
    assert all(r["cost_usd"] is None and r["prompt_tokens"] > 0 for r in rows)  # openai/fake is not in the map


async def test_a_provider_that_reports_no_usage_still_gets_its_tokens_recorded(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.report_usage = False
    fake_llm.reply("A reply of a few words.")
    async with running_router(make_settings()) as bot:
        await bot.say("Count me")
    [row] = usage_rows(db_path)
    # litellm's stream wrapper counts what the provider did not report; ours would if it did not.
    assert row["prompt_tokens"] > 0 and 4 <= row["completion_tokens"] <= 8


async def test_the_daily_cap_stops_one_person_politely_and_not_the_others(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with running_router(make_settings(user_daily_tokens=30)) as bot:
        fake_llm.reply("A long answer that uses up the small daily allowance quite quickly indeed.")
        await bot.say("First question, which is long enough to cost some tokens by itself")
        await bot.say("Second question")
        assert len(fake_llm.requests) == 1
        assert [text for _, text in bot.outbox.notices] == [
            "You've reached today's limit of 30 tokens with me, so I'll pause answering you until midnight UTC. "
            "Others in this thread can still ask me things."
        ]
        fake_llm.reply("Hello Bob.")
        await bot.say("Bob here", author=BOB, thread=thread_key())
        assert bot.outbox.replies_in(thread_key())[-1] == "Hello Bob."
    assert [r["user_id"] for r in usage_rows(db_path)] == ["U-alice", "U-bob"]


async def test_forgetting_a_thread_keeps_its_spend_unlinked(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with running_router(make_settings()) as bot:
        await bot.say("hello")
    thread_id = db_rows(db_path, "SELECT id FROM threads")[0]["id"]
    db = await open_database(db_path)
    try:
        await db.execute("DELETE FROM threads WHERE id = ?", (thread_id,))
    finally:
        await db.close()
    [row] = usage_rows(db_path)
    assert row["thread_id"] is None and row["prompt_tokens"] > 0


async def test_a_database_from_before_usage_is_upgraded(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "old.db")
    try:
        assert await migrate(db, MIGRATIONS[:1]) == ["m001_initial"]
        assert "m004_usage" in await migrate(db)
        assert await db.fetchall("SELECT * FROM usage") == []
    finally:
        await db.close()


async def test_stats_prints_usage_by_user_and_day_and_honours_since(tmp_path: Path, fake_llm: FakeLLM) -> None:
    env = fake_model_env(fake_llm.base_url, tmp_path / "stats.db", LLM_MODEL="openai/gpt-4o-mini")
    fake_llm.reply("Sure.")
    chat = await asyncio.to_thread(run_cli, "chat", "--thread", "costs", env=env, stdin="Hello\n", cwd=tmp_path)
    assert chat.returncode == 0, chat.stderr
    by_user = await asyncio.to_thread(run_cli, "stats", "--by", "user", env=env, cwd=tmp_path)
    assert by_user.returncode == 0, by_user.stderr
    header, _, line, total = by_user.stdout.splitlines()
    assert header.split() == ["user", "answers", "summaries", "tokens", "in", "tokens", "out", "cost", "USD"]
    assert line.startswith("local:") and line.split()[-5:-3] == ["1", "0"]
    assert total.split()[0] == "total" and float(total.split()[-1]) > 0
    by_day = await asyncio.to_thread(run_cli, "stats", env=env, cwd=tmp_path)
    assert by_day.stdout.splitlines()[2].startswith("20")  # the UTC day, e.g. 2026-12-01
    later = await asyncio.to_thread(run_cli, "stats", "--since", "2999-01-01", env=env, cwd=tmp_path)
    assert later.stdout.strip() == "No usage recorded yet."
    bad = await asyncio.to_thread(run_cli, "stats", "--since", "yesterday", env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "--since" in bad.stderr
