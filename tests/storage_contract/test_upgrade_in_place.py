"""A database made before the stores were written once opens under today's code with nothing lost.

The SQLite files and the Postgres dumps in ``fixtures/`` were made by main at 61e6243 and at 813e5d3
(old_databases.py says how), each with every migration of its own lists applied. Today's single migration list
must recognise what they have by name, apply only what is newer, and every store must read back what the old
stores returned.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest

from storage.backends import open_storage
from storage.migrations import migrations_for
from tests.storage_contract.conftest import NOW, new_thread, say
from tests.storage_contract.old_databases import FIXTURES, NAMES, snapshot


def _old_database(name: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        copy = tmp_path / "old.db"
        shutil.copyfile(FIXTURES / f"{name}.sqlite3", copy)
        return f"sqlite:///{copy}"
    url = str(request.getfixturevalue("postgres_url"))
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute((FIXTURES / f"{name}.postgres.sql").read_text())  # type: ignore[arg-type]
    return url


def _as_far_as_known(now: Any, then: Any) -> Any:
    """``now`` with only the fields ``then`` had: records gained fields since (a trail entry's state), and the
    old rows must read back the same in every field the old code returned."""
    if isinstance(then, dict) and isinstance(now, dict):
        return {key: _as_far_as_known(now.get(key), value) for key, value in then.items()}
    if isinstance(then, list) and isinstance(now, list):
        return [_as_far_as_known(n, t) for n, t in zip(now, then, strict=False)] + now[len(then) :]
    return now


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("name", NAMES)
async def test_a_database_made_by_the_old_stores_opens_with_nothing_lost(
    name: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = _old_database(name, backend, tmp_path, request)
    made = json.loads((FIXTURES / f"{name}.json").read_text())[backend]
    ledger, expected = made["ledger"], made["snapshot"]
    async with open_storage(url) as storage:
        assert storage.applied == tuple(m.name for m in migrations_for(backend) if m.name not in ledger)
        assert _as_far_as_known(await snapshot(storage), expected) == expected
        # and it goes on: new rows get ids after the old ones, the old thread takes new messages
        first = expected["threads"][0]["id"]
        newest = max(message["id"] for message in expected["messages"])
        assert await say(storage, first, "after-upgrade", "still here") > newest
        assert await new_thread(storage, "t3") > expected["threads"][1]["id"]
        card, created = await storage.cards.open_card(thread_id=first, now=NOW)
        assert created and card.id > expected["card"]["id"]
    async with open_storage(url) as again:
        assert again.applied == ()
