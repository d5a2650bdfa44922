"""Feedback on answers, per-thread settings and replaced answers: the stores added for commands and Slack AI."""

from __future__ import annotations

from datetime import datetime, timedelta

from storage.backends import Storage
from storage.records import FeedbackEntry, Rating
from tests.storage_contract.conftest import NOW, new_thread, say

WHERE = {"platform": "p", "workspace": "w", "channel": "c", "thread": "t"}


async def test_feedback_is_recorded_on_answers_only_replaced_per_person_and_goes_with_its_thread(
    storage: Storage,
) -> None:
    thread_id = await new_thread(storage)
    await say(storage, thread_id, "100.1", "a question")
    answer = await say(storage, thread_id, "100.2", "an answer", author="assistant", role="assistant")

    async def give(answer_id: str, user: str, rating: Rating, at: datetime) -> bool:
        return await storage.feedback.record(
            **WHERE, answer_id=answer_id, user_id=user, user_name=user.title(), rating=rating, now=at
        )

    assert await give("100.1", "ualice", "positive", NOW) is False  # a user's message is no answer
    assert await give("999.9", "ualice", "positive", NOW) is False  # nor is a message nobody logged
    assert await give("100.2", "ualice", "positive", NOW) is True
    assert await give("100.2", "ubob", "positive", NOW + timedelta(seconds=1)) is True
    assert await give("100.2", "ualice", "negative", NOW + timedelta(seconds=2)) is True  # replaces hers
    assert await storage.feedback.for_thread(thread_id=thread_id) == [
        FeedbackEntry(answer, "100.2", "ubob", "Ubob", "positive", (NOW + timedelta(seconds=1)).isoformat()),
        FeedbackEntry(answer, "100.2", "ualice", "Ualice", "negative", (NOW + timedelta(seconds=2)).isoformat()),
    ]
    await storage.erasures.delete_message(thread_id=thread_id, platform_message_id="100.2", deleted_utc=NOW)
    assert await give("100.2", "ucarol", "positive", NOW) is False  # a deleted answer takes no feedback
    await storage.erasures.forget_thread(thread_id=thread_id, now=NOW)
    assert await storage.feedback.for_thread(thread_id=thread_id) == []


async def test_a_thread_remembers_its_model_until_it_is_forgotten(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    assert await storage.thread_settings.model(thread_id=thread_id) is None
    await storage.thread_settings.set_model(thread_id=thread_id, model="openai/a", changed_by_id="u", now=NOW)
    await storage.thread_settings.set_model(thread_id=thread_id, model="openai/b", changed_by_id="v", now=NOW)
    assert await storage.thread_settings.model(thread_id=thread_id) == "openai/b"
    await storage.erasures.forget_thread(thread_id=thread_id, now=NOW)
    again = await new_thread(storage)
    assert await storage.thread_settings.model(thread_id=again) is None


async def test_a_thread_remembers_its_reply_mode_beside_its_model_until_it_is_forgotten(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    assert await storage.thread_settings.reply_mode(thread_id=thread_id) is None
    await storage.thread_settings.set_model(thread_id=thread_id, model="openai/a", changed_by_id="u", now=NOW)
    await storage.thread_settings.set_reply_mode(thread_id=thread_id, mode="mention", changed_by_id="v", now=NOW)
    assert await storage.thread_settings.reply_mode(thread_id=thread_id) == "mention"
    assert await storage.thread_settings.model(thread_id=thread_id) == "openai/a"  # one choice keeps the other
    await storage.thread_settings.set_model(thread_id=thread_id, model="openai/b", changed_by_id="u", now=NOW)
    assert await storage.thread_settings.reply_mode(thread_id=thread_id) == "mention"
    await storage.erasures.forget_thread(thread_id=thread_id, now=NOW)
    again = await new_thread(storage)
    assert await storage.thread_settings.reply_mode(thread_id=again) is None


async def test_a_message_logged_as_read_waits_for_no_answer_but_is_in_the_transcript(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    row, created = await storage.log.record_message(
        thread_id=thread_id, platform_message_id="h1", author_id="ann", author_name="Ann", role="user",
        content="earlier words", sent_utc=NOW, now=NOW, read=True,
    )  # fmt: skip
    again, twice = await storage.log.record_message(
        thread_id=thread_id, platform_message_id="h1", author_id="ann", author_name="Ann", role="user",
        content="earlier words", sent_utc=NOW, now=NOW, read=True,
    )  # fmt: skip
    assert (created, twice, again.id) == (True, False, row.id)  # logged once however often it is read
    await say(storage, thread_id, "m2", "a question", author="bob")
    assert [m.platform_message_id for m in await storage.log.waiting(thread_id=thread_id)] == ["m2"]
    assert [m.content for m in await storage.log.transcript(thread_id=thread_id)] == ["earlier words"]
    assert await storage.log.threads_with_waiting(platform="p") != []
    assert sorted(await storage.log.speakers(thread_id=thread_id, limit=5)) == ["ann", "bob"]
    assert len(await storage.log.speakers(thread_id=thread_id, limit=1)) == 1


async def test_a_replaced_answer_stays_in_the_log_but_leaves_transcript_and_search(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    question = await say(storage, thread_id, "m1", "which port")
    reply = await storage.log.record_reply(
        thread_id=thread_id, platform_message_id="r1", author_name="bot", content="port 5433 maybe",
        answered_ids=[question], now=NOW,
    )  # fmt: skip
    assert reply is not None
    assert await storage.log.replace_reply(thread_id=thread_id, reply_id=reply, answered_ids=[question], now=NOW)
    assert not await storage.log.replace_reply(thread_id=thread_id, reply_id=reply, answered_ids=[question], now=NOW)
    assert [m.id for m in await storage.log.waiting(thread_id=thread_id)] == [question]  # answered again next
    assert await storage.log.transcript(thread_id=thread_id) == []
    assert await storage.search.search(thread_id=thread_id, query="5433", limit=5) == []
    [_, replaced] = await storage.log.all_messages(thread_id=thread_id)
    assert (replaced.id, replaced.replaced, replaced.content) == (reply, True, "port 5433 maybe")


async def test_attachment_metadata_is_replaced_once_read_but_a_deleted_message_stays_blank(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    kept = await say(storage, thread_id, "m1", "see file")
    gone = await say(storage, thread_id, "m2", "see other file")
    await storage.erasures.delete_message(thread_id=thread_id, platform_message_id="m2", deleted_utc=NOW)
    for message_id in (kept, gone):
        await storage.log.set_attachments(
            thread_id=thread_id, message_id=message_id, attachments=[{"filename": "a.txt", "status": "read"}]
        )
    rows = await storage.log.all_messages(thread_id=thread_id)
    assert [m.attachments for m in rows] == [[{"filename": "a.txt", "status": "read"}], []]
