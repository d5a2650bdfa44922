"""The log's group-commit batch on Postgres: three statements whatever the batch's size (arrays through ``unnest``).

Idempotence lives in the unique constraint (``ON CONFLICT DO NOTHING``); under READ COMMITTED a second worker
inserting the same message waits for the first to commit, then reads its row. A round trip per row would
halve the rate. Within a batch rows are written in (thread, platform id) order, so two workers' batches take
their locks in the same order and cannot deadlock on each other; should one ever fail anyway, the group commit
(``storage/group_commit.py``) retries the batch row by row.
"""

from __future__ import annotations

from psycopg import AsyncConnection, errors
from psycopg.rows import DictRow

from storage.records import MESSAGE_COLUMNS, LoggedMessage, NewMessage, ThreadGone


def typed_error(exc: BaseException) -> BaseException:
    if isinstance(exc, errors.ForeignKeyViolation):
        return ThreadGone(str(exc))
    return exc


_INSERT_BATCH = (
    "INSERT INTO messages (thread_id, platform_message_id, author_id, author_name, role, content, attachments_json, "
    "reply_state, sent_utc, logged_utc) SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], "
    "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[]) "
    f"ON CONFLICT DO NOTHING RETURNING {MESSAGE_COLUMNS}"
)
_SELECT_LOGGED = (
    f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE (thread_id, platform_message_id) IN "
    "(SELECT * FROM unnest(%s::bigint[], %s::text[]))"
)
_TOUCH_THREADS = (
    "UPDATE threads SET last_message_utc = touched.at FROM unnest(%s::bigint[], %s::text[]) AS touched (id, at) "
    "WHERE threads.id = touched.id"
)
_FIELDS = (
    "thread_id", "platform_message_id", "author_id", "author_name", "role", "content", "attachments_json",
    "reply_state", "sent_utc", "logged_utc",
)  # fmt: skip


async def write_messages(
    connection: AsyncConnection[DictRow], news: list[NewMessage]
) -> list[tuple[LoggedMessage, bool]]:
    """The whole batch in three statements: insert what is new, read what was logged before, touch threads.

    Rows go in (thread, platform id) order so two workers' batches lock in the same order. A message twice in
    one batch is created by its first occurrence; the later ones get the same row with ``created`` False.
    """
    ordered = sorted(news, key=lambda n: (n.thread_id, n.platform_message_id))
    columns = [[getattr(new, field) for new in ordered] for field in _FIELDS]
    cursor = await connection.execute(_INSERT_BATCH, columns)
    logged = {(int(row["thread_id"]), row["platform_message_id"]): row for row in await cursor.fetchall()}
    created_now = set(logged)
    missing = list(
        dict.fromkeys(
            (n.thread_id, n.platform_message_id) for n in news if (n.thread_id, n.platform_message_id) not in logged
        )
    )
    if missing:
        cursor = await connection.execute(_SELECT_LOGGED, ([t for t, _ in missing], [p for _, p in missing]))
        logged |= {(int(row["thread_id"]), row["platform_message_id"]): row for row in await cursor.fetchall()}
    touched: dict[int, str] = {}
    for new in ordered:
        if (new.thread_id, new.platform_message_id) in created_now:
            touched[new.thread_id] = max(touched.get(new.thread_id, ""), new.logged_utc)
    if touched:
        await connection.execute(_TOUCH_THREADS, (list(touched), list(touched.values())))
    results = []
    for new in news:
        key = (new.thread_id, new.platform_message_id)
        results.append((LoggedMessage.from_row(logged[key]), key in created_now))
        created_now.discard(key)  # a second occurrence in the batch did not create it
    return results
