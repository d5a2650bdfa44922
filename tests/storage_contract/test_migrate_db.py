"""``threadkeeper migrate-db``: a whole SQLite log moves to Postgres with every id, and nothing is merged."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from pathlib import Path

from storage.backends import Storage, open_storage
from storage.records import ApprovalRecord, Grouping, UsageRow
from tests.storage_contract.conftest import NOW, new_thread, say
from tests.test_config_and_cli import run_cli


async def _fill(storage: Storage) -> dict[str, int]:
    """A log with something in every table, a forgotten thread and a discarded card among it."""
    one, two = await new_thread(storage, "one"), await new_thread(storage, "two")
    forgotten = await new_thread(storage, "forgotten")
    question = await say(storage, one, "m1", "what is the port?")
    await storage.events.record(platform="p", event_key="e1", message_id=question, now=NOW)
    reply = await storage.log.record_reply(
        thread_id=one, platform_message_id="r1", author_name="bot", content="5433", answered_ids=[question], now=NOW
    )
    assert reply is not None
    await say(storage, two, "m2", "deleted soon", author="alice")
    await say(storage, two, "m3", "still waiting")
    await say(storage, forgotten, "m4", "gone")
    await storage.erasures.delete_message(thread_id=two, platform_message_id="m2", deleted_utc=NOW)
    await storage.erasures.forget_thread(thread_id=forgotten, now=NOW)
    await storage.sessions.record_with_summary(
        thread_id=one, model="m", started_utc=NOW, summary="asked the port", summary_through_message_id=reply,
        erasures_seen=await storage.erasures.latest_id(),
    )  # fmt: skip
    discarded, _ = await storage.cards.open_card(thread_id=two, now=NOW)
    await storage.cards.discard(card_id=discarded.id)
    card, _ = await storage.cards.open_card(thread_id=two, now=NOW)
    await storage.cards.set_message_id(card_id=card.id, card_message_id="card-msg")
    await storage.trail.record(
        thread_id=one, after_message_id=question, call_id="c1", tool="search_thread", arguments={"query": "port"},
        result_excerpt="bot: 5433", is_error=False, duration_ms=4, approval="not_needed", decided_by=None,
        cites=(reply,), now=NOW,
    )  # fmt: skip
    approval = await storage.approvals.open(thread_id=one, tool="fs__write", arguments_preview="{}", now=NOW)
    await storage.usage.record(
        [UsageRow(one, "alice", "answer", "openai/x", 10, 5, False, 0.01, NOW - timedelta(days=1))]
    )
    return {
        "one": one, "two": two, "forgotten": forgotten, "card": card.id, "discarded": discarded.id,
        "approval": approval,
    }  # fmt: skip


async def _snapshot(storage: Storage, ids: dict[str, int]) -> list[object]:
    return [
        await storage.log.find_threads(name="one"),
        await storage.log.all_messages(thread_id=ids["one"]),
        await storage.log.all_messages(thread_id=ids["two"]),
        await storage.log.waiting(thread_id=ids["two"]),
        await storage.sessions.latest_summary(thread_id=ids["one"]),
        await storage.cards.open_card_for(thread_id=ids["two"]),
        await storage.erasures.since(after_id=0),
        await storage.trail.for_thread(thread_id=ids["one"]),
        _without_age(await storage.approvals.get(approval_id=ids["approval"])),
        await storage.usage.totals(by=Grouping.THREAD),
    ]


async def test_migrate_db_copies_every_row_and_id_and_new_ids_continue_after_them(
    postgres_url: str, tmp_path: Path
) -> None:
    source = f"sqlite:///{tmp_path}/old.db"
    async with open_storage(source) as sqlite:
        ids = await _fill(sqlite)
        before = await _snapshot(sqlite, ids)
    moved = await asyncio.to_thread(run_cli, "migrate-db", "--from", source, "--to", postgres_url, env={}, cwd=tmp_path)
    assert moved.returncode == 0, moved.stderr
    assert "messages: 4 row(s)" in moved.stdout and "ids kept" in moved.stdout
    async with open_storage(postgres_url) as postgres:
        assert await _snapshot(postgres, ids) == before
        assert await postgres.events.record(platform="p", event_key="e1", message_id=1, now=NOW)  # handled already
        assert await new_thread(postgres, "three") > ids["forgotten"]  # the journal still names that id
        await postgres.cards.discard(card_id=ids["card"])
        newer, _ = await postgres.cards.open_card(thread_id=ids["two"], now=NOW)
        assert newer.id > ids["card"] > ids["discarded"]  # SQLite's AUTOINCREMENT counter came along


async def test_migrate_db_refuses_a_target_that_holds_anything_and_changes_nothing(
    postgres_url: str, tmp_path: Path
) -> None:
    source = f"sqlite:///{tmp_path}/old.db"
    async with open_storage(source) as sqlite:
        await say(sqlite, await new_thread(sqlite), "m1", "from sqlite")
    async with open_storage(postgres_url) as postgres:
        thread_id = await new_thread(postgres, "already here")
        await say(postgres, thread_id, "p1", "from postgres")
    refused = await asyncio.to_thread(
        run_cli, "migrate-db", "--from", source, "--to", postgres_url, env={}, cwd=tmp_path
    )
    assert refused.returncode == 2
    assert "already holds rows (threads: 1, messages: 1)" in refused.stderr and "empty database" in refused.stderr
    async with open_storage(postgres_url) as postgres:
        assert [m.content for m in await postgres.log.all_messages(thread_id=thread_id)] == ["from postgres"]
        assert await postgres.log.find_threads(name="t") == []


async def test_migrate_db_names_what_is_wrong_with_its_arguments(postgres_url: str, tmp_path: Path) -> None:
    missing = await asyncio.to_thread(
        run_cli, "migrate-db", "--from", f"sqlite:///{tmp_path}/nope.db", "--to", postgres_url, env={}, cwd=tmp_path
    )
    assert missing.returncode == 2 and "no SQLite file at" in missing.stderr
    backwards = await asyncio.to_thread(
        run_cli, "migrate-db", "--from", postgres_url, "--to", f"sqlite:///{tmp_path}/x.db", env={}, cwd=tmp_path
    )
    assert backwards.returncode == 2 and "--from a sqlite:/// URL --to a postgresql:// URL" in backwards.stderr
    unreachable = "postgresql://someone:hunter2@127.0.0.1:1/none"
    (tmp_path / "old.db").touch()
    down = await asyncio.to_thread(
        run_cli, "migrate-db", "--from", f"sqlite:///{tmp_path}/old.db", "--to", unreachable, env={}, cwd=tmp_path
    )
    assert down.returncode == 2 and "cannot connect to postgresql://someone:***@127.0.0.1:1/none" in down.stderr
    assert "hunter2" not in down.stderr


def _without_age(record: ApprovalRecord | None) -> ApprovalRecord | None:
    """The approval as stored: its age is a reading of the database's clock, later in the copy."""
    return None if record is None else dataclasses.replace(record, age_s=None)
