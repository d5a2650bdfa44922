"""A voice message's transcript (m012) on each backend: logged with its message, searched, and forgotten with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.backends import Backend, Storage, database_path_from_url
from tests.storage_contract.conftest import NOW, new_thread, say
from tests.storage_contract.test_erasure import _tuples_holding

WORD = "zqxjvqplkw"  # one lowercase token: also what SQLite's search index stores
AUDIO = [{"filename": "voice-message.ogg", "content_type": "audio/ogg", "size_bytes": 9, "used": "transcribed"}]


async def _voice_message(storage: Storage, thread_id: int, platform_id: str = "v1", *, author: str = "u") -> int:
    """A voice message as the router logs it: no text, then its audio read and transcribed."""
    message_id = await say(storage, thread_id, platform_id, "", author=author)
    await storage.log.set_attachments(
        thread_id=thread_id, message_id=message_id, attachments=AUDIO, transcript=f"please remember {WORD} tomorrow"
    )
    return message_id


async def test_a_transcript_is_logged_with_its_message_and_found_by_search(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    await say(storage, thread_id, "t1", "some typed words")
    message_id = await _voice_message(storage, thread_id)
    typed, row = await storage.log.waiting(thread_id=thread_id)
    assert typed.transcript is None
    assert (row.id, row.content, row.transcript, row.attachments) == (
        message_id,
        "",
        f"please remember {WORD} tomorrow",
        AUDIO,
    )
    [hit] = await storage.search.search(thread_id=thread_id, query=WORD, limit=5)
    assert (hit.message_id, hit.content, hit.transcript) == (message_id, "", f"please remember {WORD} tomorrow")
    # Reading the files again (a retry) without a transcript keeps the one logged.
    await storage.log.set_attachments(thread_id=thread_id, message_id=message_id, attachments=AUDIO)
    assert [m.transcript for m in await storage.log.all_messages(thread_id=thread_id)] == [
        None,
        f"please remember {WORD} tomorrow",
    ]


async def test_an_edit_of_the_text_keeps_the_transcript_of_the_audio_still_there(storage: Storage) -> None:
    thread_id = await new_thread(storage)
    await _voice_message(storage, thread_id)
    await storage.erasures.edit_message(thread_id=thread_id, platform_message_id="v1", content="typed", edited_utc=NOW)
    [row] = await storage.log.all_messages(thread_id=thread_id)
    assert (row.content, row.transcript) == ("typed", f"please remember {WORD} tomorrow")
    assert [h.message_id for h in await storage.search.search(thread_id=thread_id, query=WORD, limit=5)] == [row.id]


@pytest.mark.parametrize("how", ["deleted", "user forgotten", "thread forgotten"])
async def test_forgetting_a_voice_message_erases_its_transcript_everywhere(
    storage: Storage, database_url: str, how: str
) -> None:
    thread_id = await new_thread(storage)
    for i in range(30):  # pages and WAL frames for stale copies to hide in
        await say(storage, thread_id, f"f{i}", f"filler message {i} " * 20, author="other")
    await _voice_message(storage, thread_id, author="speaker")
    assert await _holding(storage, database_url) > 0
    if how == "deleted":
        await storage.erasures.delete_message(thread_id=thread_id, platform_message_id="v1", deleted_utc=NOW)
    elif how == "user forgotten":
        await storage.erasures.forget_user(platform="p", user_id="speaker", now=NOW)
    else:
        await storage.erasures.forget_thread(thread_id=thread_id, now=NOW)
    assert [m.transcript for m in await storage.log.all_messages(thread_id=thread_id) if m.transcript] == []
    assert await storage.search.search(thread_id=thread_id, query=WORD, limit=5) == []
    assert await _holding(storage, database_url) == 0


async def _holding(storage: Storage, database_url: str) -> int:
    """How many copies of WORD the database keeps: row versions on Postgres, occurrences in SQLite's files."""
    if storage.backend is Backend.POSTGRES:
        return await _tuples_holding(storage, WORD)
    return _occurrences(database_path_from_url(database_url).parent)


def _occurrences(folder: Path) -> int:
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()).count(WORD.encode())
