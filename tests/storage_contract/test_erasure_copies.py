"""Forgetting reaches every copy of a message's text and of a person's identity, on each backend.

A thread's title made from a message, the tool calls and approval requests of the turn that answered it, and
the rows that record what a forgotten person did (usage, approvals, card choices, feedback, model choices).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from storage.backends import Backend, Storage
from storage.records import REMOVED_EXCERPT, UsageRow, UserErasure
from tests.storage_contract.conftest import NOW, say
from tests.storage_contract.test_erasure import _tuples_holding

SECRET = "my password is hunter2, rotate it"


async def rows(storage: Storage, sql: str, *params: object) -> list[Any]:
    """Raw rows, for columns no store reads back (``?`` placeholders, turned into Postgres' ``%s`` there)."""
    database: Any = storage.database
    if storage.backend is Backend.POSTGRES:
        sql = sql.replace("?", "%s")
    return list(await database.fetchall(sql, params))


async def titled_thread(storage: Storage, name: str = "t", *, from_message: str | None = "m1") -> int:
    """A thread titled after its first message ``from_message`` (None: a title the platform chose)."""
    thread_id = await storage.log.ensure_thread(
        platform="p", workspace="w", channel="c", thread=name, title=SECRET[:20], now=NOW,
        title_message_id=from_message,
    )  # fmt: skip
    await say(storage, thread_id, "m1", SECRET, author="alice")
    return thread_id


async def title_of(storage: Storage, thread_id: int) -> str | None:
    thread = await storage.log.thread(thread_id=thread_id)
    assert thread is not None
    return thread.title


@pytest.mark.parametrize("how", ["deleted", "edited", "forgot_user", "purged"])
async def test_a_title_made_from_a_message_goes_with_it(storage: Storage, how: str) -> None:
    thread_id = await titled_thread(storage)
    named = await titled_thread(storage, "named", from_message=None)  # the platform chose this one's name
    await say(storage, named, "m2", "later", author="bob")
    assert await title_of(storage, thread_id) == SECRET[:20]
    for tid in (thread_id, named):
        if how == "deleted":
            await storage.erasures.delete_message(thread_id=tid, platform_message_id="m1", deleted_utc=NOW)
        elif how == "edited":
            await storage.erasures.edit_message(thread_id=tid, platform_message_id="m1", content="x", edited_utc=NOW)
    if how == "forgot_user":
        erased = await storage.erasures.forget_user(platform="p", user_id="alice", now=NOW)
        assert erased == [UserErasure(thread_id, "t", None, 1), UserErasure(named, "named", SECRET[:20], 1)]
    elif how == "purged":
        for tid in (thread_id, named):
            waiting = [m.id for m in await storage.log.waiting(thread_id=tid)]
            await storage.log.record_reply(
                thread_id=tid, platform_message_id="r", author_name="bot", content="ok", answered_ids=waiting,
                now=NOW + timedelta(hours=1),
            )  # fmt: skip
        assert await storage.erasures.purge_older_than(cutoff=NOW + timedelta(seconds=1), now=NOW) == 3
    assert await title_of(storage, thread_id) is None
    assert await title_of(storage, named) == SECRET[:20]
    assert await storage.log.find_threads(name=SECRET[:20]) == [await storage.log.thread(thread_id=named)]


@pytest.mark.parametrize("how", ["deleted", "edited"])
async def test_a_change_says_whether_it_took_the_title_so_the_platform_title_can_follow(
    storage: Storage, how: str
) -> None:
    thread_id = await titled_thread(storage)
    named = await titled_thread(storage, "named", from_message=None)
    await say(storage, thread_id, "m2", "a later message")
    changes = []
    for tid, platform_id in ((thread_id, "m2"), (named, "m1"), (thread_id, "m1")):
        if how == "deleted":
            change = await storage.erasures.delete_message(
                thread_id=tid, platform_message_id=platform_id, deleted_utc=NOW
            )
        else:
            change = await storage.erasures.edit_message(
                thread_id=tid, platform_message_id=platform_id, content="x", edited_utc=NOW
            )
        assert change is not None
        changes.append(change.title_forgotten)
    assert changes == [False, False, True]  # only the message the title was made from takes it


async def test_a_title_leaves_no_row_version_behind(storage: Storage) -> None:
    """Postgres: VACUUM takes the old title's row versions too (SQLite's bytes: the Slack forgetting story)."""
    if storage.backend is not Backend.POSTGRES:
        pytest.skip("SQLite's file is checked byte by byte in tests/slack/test_slack_forgetting.py")
    thread_id = await titled_thread(storage)
    assert await _tuples_holding(storage, "hunter2") > 0
    await storage.erasures.delete_message(thread_id=thread_id, platform_message_id="m1", deleted_utc=NOW)
    assert await _tuples_holding(storage, "hunter2") == 0


async def _tool_turn(storage: Storage, thread_id: int, question: int, *, tool: str, text: str) -> int:
    """A turn answering ``question``: an approval asked, a tool call made, then the bot's reply."""
    later = NOW + timedelta(seconds=question)
    asked = later - timedelta(milliseconds=500)
    approval = await storage.approvals.open(thread_id=thread_id, tool=tool, arguments_preview=text, now=asked)
    await storage.trail.record(
        thread_id=thread_id, after_message_id=question, call_id=f"c{question}", tool=tool, arguments={"q": text},
        result_excerpt=f"found {text}", is_error=False, duration_ms=5, approval="approved", decided_by="Bob",
        cites=(), now=NOW,
    )  # fmt: skip
    await storage.log.record_reply(
        thread_id=thread_id, platform_message_id=f"r{question}", author_name="bot", content="done",
        answered_ids=[question], now=later,
    )  # fmt: skip
    return approval


async def test_the_tool_calls_and_approvals_of_a_forgotten_questions_turn_lose_its_words(storage: Storage) -> None:
    thread_id = await titled_thread(storage)
    first = (await storage.log.all_messages(thread_id=thread_id))[0].id
    asked = await _tool_turn(storage, thread_id, first, tool="search", text="hunter2")
    kept_question = await say(storage, thread_id, "m3", "and the weather?", sent=NOW + timedelta(seconds=30))
    kept = await _tool_turn(storage, thread_id, kept_question, tool="weather", text="Paris")
    await storage.erasures.delete_message(thread_id=thread_id, platform_message_id="m1", deleted_utc=NOW)
    trail = await storage.trail.for_thread(thread_id=thread_id)
    assert [(e.tool, e.arguments_json, e.result_excerpt) for e in trail] == [
        ("search", "{}", REMOVED_EXCERPT),
        ("weather", '{"q": "Paris"}', "found Paris"),
    ]
    gone, still = await storage.approvals.get(approval_id=asked), await storage.approvals.get(approval_id=kept)
    assert gone is not None and still is not None
    assert (gone.arguments_preview, still.arguments_preview) == (REMOVED_EXCERPT, "Paris")


async def test_forget_user_takes_their_id_and_name_off_every_row_of_what_they_did(storage: Storage) -> None:
    thread_id = await titled_thread(storage)
    answer = await storage.log.record_reply(
        thread_id=thread_id, platform_message_id="r1", author_name="bot", content="done", answered_ids=[], now=NOW
    )
    assert answer is not None
    approval = await storage.approvals.open(thread_id=thread_id, tool="search", arguments_preview="{}", now=NOW)
    assert await storage.approvals.decide(
        approval_id=approval, state="approved", by_id="carol", by_name="Carol", now=NOW
    )
    await storage.trail.record(
        thread_id=thread_id, after_message_id=answer, call_id="c1", tool="search", arguments={}, result_excerpt="ok",
        is_error=False, duration_ms=1, approval="approved", decided_by="Carol", cites=(), now=NOW,
    )  # fmt: skip
    card, _ = await storage.cards.open_card(thread_id=thread_id, now=NOW)
    assert await storage.cards.claim(card_id=card.id, state="fresh", by_id="carol", by_name="Carol", now=NOW)
    await storage.thread_settings.set_model(thread_id=thread_id, model="m", changed_by_id="carol", now=NOW)
    for who in ("carol", "dave"):
        assert await storage.feedback.record(
            platform="p", workspace="w", channel="c", thread="t", answer_id="r1", user_id=who,
            user_name=who.title(), rating="positive", now=NOW,
        )  # fmt: skip
    await storage.usage.record([UsageRow(thread_id, "carol", "answer", "m", 10, 5, False, 0.5, NOW)])
    assert await storage.usage.tokens_since(user_id="carol", since=NOW) == 15

    assert await storage.erasures.forget_user(platform="p", user_id="carol", now=NOW) == []  # no message of hers

    assert await storage.usage.tokens_since(user_id="carol", since=NOW) == 0
    assert [(r["user_id"], r["prompt_tokens"]) for r in await rows(storage, "SELECT * FROM usage")] == [(None, 10)]
    decided = await rows(storage, "SELECT state, decided_by_id, decided_by_name FROM approvals")
    assert [tuple(r[k] for k in ("state", "decided_by_id", "decided_by_name")) for r in decided] == [
        ("approved", None, None)
    ]
    assert [(e.approval, e.decided_by) for e in await storage.trail.for_thread(thread_id=thread_id)] == [
        ("approved", None)
    ]
    chosen = await rows(storage, "SELECT resolved_by_id, resolved_by_name FROM cards")
    assert [(r["resolved_by_id"], r["resolved_by_name"]) for r in chosen] == [(None, None)]
    changed = await rows(storage, "SELECT model, changed_by_id FROM thread_settings")
    assert [(r["model"], r["changed_by_id"]) for r in changed] == [("m", None)]
    feedback = await storage.feedback.for_thread(thread_id=thread_id)
    assert sorted((f.user_name, f.rating) for f in feedback) == [("", "positive"), ("Dave", "positive")]
    assert {f.user_id for f in feedback} & {"carol"} == set()
    assert await storage.log.thread(thread_id=thread_id) is not None  # alice's title is not carol's to forget
    assert await title_of(storage, thread_id) == SECRET[:20]
