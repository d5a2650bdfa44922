"""Databases made by the code before the stores were written once, for the upgrade test.

``fixtures/`` holds, for main at 61e6243 (before issue 18's m008) and at 813e5d3 (the last main before this
change), a SQLite file and a ``pg_dump`` of a Postgres database that the code of that commit created and filled
(every migration of its own applied), with the migrations it recorded and what its stores returned right after.
Each was made by running this file with that code first on the path::

    PYTHONPATH=/path/to/main-at-813e5d3 python tests/storage_contract/old_databases.py main-813e5d3

It uses only ``open_storage`` and the stores' Protocols, so the same :func:`snapshot` reads the fixtures back
with today's code (tests/storage_contract/test_upgrade_in_place.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
NAMES = ("main-61e6243", "main-813e5d3")
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


async def populate(storage: Any) -> None:
    """A little of everything: two threads, answers, an edit, a deletion, a card, usage, a tool call, feedback."""
    from storage.records import UsageRow

    log = storage.log
    first = await log.ensure_thread(platform="p", workspace="w", channel="c", thread="t1", title="Plans", now=NOW)
    second = await log.ensure_thread(platform="p", workspace="w", channel="c", thread="t2", title=None, now=NOW)
    ids = []
    for n, (author, text) in enumerate([("ann", "where do we meet?"), ("bob", "at the harbour cafe"), ("ann", "ok")]):
        row, _ = await log.record_message(
            thread_id=first, platform_message_id=f"m{n}", author_id=author, author_name=author.title(),
            role="user", content=text, sent_utc=NOW + timedelta(minutes=n), now=NOW + timedelta(minutes=n),
        )  # fmt: skip
        ids.append(row.id)
    await log.record_reply(
        thread_id=first, platform_message_id="r1", author_name="bot", content="The harbour cafe.",
        answered_ids=ids, now=NOW + timedelta(minutes=5),
    )  # fmt: skip
    await storage.erasures.edit_message(
        thread_id=first, platform_message_id="m2", content="ok, see you", edited_utc=NOW + timedelta(minutes=6)
    )
    await storage.erasures.delete_message(thread_id=first, platform_message_id="m1", deleted_utc=NOW)
    await storage.sessions.record(thread_id=first, origin="catch_up", model="m", started_utc=NOW, summary="a plan",
                                  summary_through_message_id=ids[0])  # fmt: skip
    waiting, _ = await log.record_message(
        thread_id=second, platform_message_id="w1", author_id="cy", author_name="Cy", role="user",
        content="anyone?", sent_utc=NOW, now=NOW,
    )  # fmt: skip
    card, _ = await storage.cards.open_card(thread_id=second, now=NOW)
    await storage.cards.set_message_id(card_id=card.id, card_message_id="card-1")
    await storage.events.record(platform="p", event_key="ev-1", message_id=waiting.id, now=NOW)
    await storage.usage.record(
        [UsageRow(first, "ann", "answer", "m", 120, 30, False, 0.002, NOW),
         UsageRow(first, "bob", "summary", "m", 400, 80, True, None, NOW)]
    )  # fmt: skip
    await storage.trail.record(
        thread_id=first, after_message_id=ids[0], call_id="c1", tool="search_thread", arguments={"q": "cafe"},
        result_excerpt="at the harbour cafe", is_error=False, duration_ms=12, approval="not_needed",
        decided_by=None, cites=(ids[1],), now=NOW,
    )  # fmt: skip
    approval = await storage.approvals.open(thread_id=first, tool="shell", arguments_preview="ls", now=NOW)
    await storage.approvals.decide(approval_id=approval, state="approved", by_id="ann", by_name="Ann", now=NOW)
    await storage.feedback.record(
        platform="p", workspace="w", channel="c", thread="t1", answer_id="r1", user_id="ann", user_name="Ann",
        rating="positive", now=NOW,
    )  # fmt: skip
    await storage.thread_settings.set_model(thread_id=first, model="small", changed_by_id="ann", now=NOW)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {key: _plain(item) for key, item in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


async def snapshot(storage: Any) -> dict[str, Any]:
    """What every store returns about the populated threads, as plain JSON values."""
    from storage.records import Grouping

    first = await storage.log.find_thread(platform="p", workspace="w", channel="c", thread="t1")
    second = await storage.log.find_thread(platform="p", workspace="w", channel="c", thread="t2")
    card = await storage.cards.open_card_for(thread_id=second)
    return _plain(
        {
            "threads": [await storage.log.thread(thread_id=first), await storage.log.thread(thread_id=second)],
            "messages": await storage.log.all_messages(thread_id=first),
            "transcript": await storage.log.transcript(thread_id=first),
            "waiting": await storage.log.waiting(thread_id=second),
            "summary": await storage.sessions.latest_summary(thread_id=first),
            "card": card,
            "erasures": await storage.erasures.since(after_id=0),
            "usage": [await storage.usage.totals(by=grouping) for grouping in Grouping],
            "trail": await storage.trail.for_thread(thread_id=first),
            "approval": await storage.approvals.get(approval_id=1),
            "feedback": await storage.feedback.for_thread(thread_id=first),
            "model": await storage.thread_settings.model(thread_id=first),
            "search": await storage.search.search(thread_id=first, query="cafe harbour", limit=5),
        }
    )


async def _make(url: str) -> dict[str, Any]:
    """The ledger a new database got (every migration of that code) and what the stores return once filled."""
    from storage.backends import open_storage

    async with open_storage(url) as storage:
        await populate(storage)
        return {"ledger": list(storage.applied), "snapshot": await snapshot(storage)}


def main(name: str) -> None:
    from tests.fakes.postgres import PostgresServer

    FIXTURES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_file = Path(tmp) / "bot.db"
        expected = {"sqlite": asyncio.run(_make(f"sqlite:///{sqlite_file}"))}
        shutil.copyfile(sqlite_file, FIXTURES / f"{name}.sqlite3")
    server = PostgresServer.start()
    try:
        url = server.create_database()
        expected["postgres"] = asyncio.run(_make(url))
        dump = subprocess.run(
            ["pg_dump", "--inserts", "--no-owner", "--no-privileges", "--dbname", url],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
    finally:
        server.stop()
    script = "\n".join(line for line in dump.splitlines() if not line.startswith("\\"))  # psql meta-commands
    (FIXTURES / f"{name}.postgres.sql").write_text(script + "\n")
    (FIXTURES / f"{name}.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
