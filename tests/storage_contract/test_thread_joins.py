"""ThreadJoins' contract: a joined thread's history, logged after the mention and what came next, reads before them.

The log orders a thread by id; the history of a thread the bot is brought into is read after the mention was
logged (and acknowledged), so it goes under ids reserved when the join opened (``storage/joins.py``).
"""

from __future__ import annotations

from storage.backends import Storage
from storage.records import NewMessage, iso
from tests.storage_contract.conftest import NOW, new_thread, say


async def begin(storage: Storage, thread: str = "t", *, room: int = 5) -> int | None:
    return await storage.joins.begin(
        platform="p",
        workspace="w",
        channel="c",
        thread=thread,
        title=None,
        title_message_id=None,
        before_message_id="mention",
        room=room,
        now=NOW,
    )


def earlier(thread_id: int, platform_id: str, content: str) -> NewMessage:
    return NewMessage(thread_id, platform_id, "u", "U", "user", content, "[]", "answered", iso(NOW), iso(NOW))


async def test_history_logged_last_reads_first_and_the_join_closes(storage: Storage) -> None:
    thread_id = await begin(storage)
    assert thread_id is not None and await new_thread(storage) == thread_id  # the thread's row is made with it
    other = await new_thread(storage, "elsewhere")
    await say(storage, thread_id, "mention", "@bot what now?")
    await say(storage, other, "x", "another thread goes on meanwhile")
    await say(storage, thread_id, "later", "and the timeline?")
    join = await storage.joins.open_join(thread_id=thread_id)
    assert join is not None and join.before_message_id == "mention" and len(join.reserved_ids) == 5
    history = [earlier(thread_id, f"h{i}", f"point {i}") for i in range(3)]
    logged = await storage.joins.finish(join=join, history=history)
    assert [m.content for m in logged] == ["point 0", "point 1", "point 2"]
    assert [m.reply_state for m in logged] == ["answered"] * 3
    rows = await storage.log.all_messages(thread_id=thread_id)
    assert [m.content for m in rows] == ["point 0", "point 1", "point 2", "@bot what now?", "and the timeline?"]
    assert await storage.joins.open_join(thread_id=thread_id) is None
    assert await storage.log.has_messages_before(thread_id=thread_id, message_id=rows[3].id)
    # The ids are the thread's for good: what is logged next goes after everything.
    await say(storage, thread_id, "next", "next")
    assert (await storage.log.all_messages(thread_id=thread_id))[-1].content == "next"


async def test_a_thread_with_a_row_already_opens_no_join(storage: Storage) -> None:
    await new_thread(storage)
    assert await begin(storage) is None
    assert await begin(storage, "fresh") is not None
    assert await begin(storage, "fresh") is None  # a second delivery of the same mention


async def test_a_history_longer_than_the_room_keeps_its_newest_and_a_repeat_finish_adds_nothing(
    storage: Storage,
) -> None:
    thread_id = await begin(storage, room=2)
    assert thread_id is not None
    await say(storage, thread_id, "mention", "@bot?")
    join = await storage.joins.open_join(thread_id=thread_id)
    assert join is not None
    history = [earlier(thread_id, f"h{i}", f"point {i}") for i in range(4)]
    assert [m.content for m in await storage.joins.finish(join=join, history=history)] == ["point 2", "point 3"]
    assert await storage.joins.finish(join=join, history=history) == []  # a worker that read it too: no second copy
    rows = await storage.log.all_messages(thread_id=thread_id)
    assert [m.content for m in rows] == ["point 2", "point 3", "@bot?"]
