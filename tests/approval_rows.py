"""Approval rows for platform tests: what the router's approval flow would open, on the bot's own database.

The tests act as the router here: they open an approval with ``storage.trail.ApprovalStore`` over a second
connection to the bot's SQLite file, post its card through the platform's real outbox, and record the
posted message, so the adapter's click path meets a real row.
"""

from __future__ import annotations

from pathlib import Path

from bots.seam.messages import ThreadKey, utc_now
from bots.seam.ports import ApprovalCard, ApprovalState, ThreadOutbox
from storage.sqlite.db import open_database
from storage.trail import ApprovalStore
from tests.router_harness import db_rows

TOOL = "files__write_file"
ARGUMENTS = '{"path": "notes/<b>plan</b>.md", "text": "ship & tell"}'


async def post_approval(
    db_path: Path, outbox: ThreadOutbox, thread: ThreadKey, *, tool: str = TOOL, arguments: str = ARGUMENTS
) -> tuple[int, str]:
    """Open an approval in ``thread`` (which the bot must know already) and post its card; (id, message id)."""
    rows = db_rows(
        db_path,
        "SELECT id FROM threads WHERE platform = ? AND channel = ? AND thread = ?",
        (thread.platform, thread.channel, thread.thread),
    )
    assert rows, f"the bot has no thread {thread}"
    db = await open_database(db_path)
    try:
        approvals = ApprovalStore(db)
        approval_id = await approvals.open(
            thread_id=rows[0]["id"], tool=tool, arguments_preview=arguments, now=utc_now()
        )
        card = ApprovalCard(approval_id, thread, tool, arguments, ApprovalState.PENDING)
        message_id = await outbox.post_approval(card=card)
        await approvals.set_message_id(approval_id=approval_id, card_message_id=message_id)
    finally:
        await db.close()
    return approval_id, message_id


def approval_row(db_path: Path, approval_id: int) -> tuple[str, str | None]:
    """(state, decided_by_name) as the database has them."""
    row = db_rows(db_path, "SELECT state, decided_by_name FROM approvals WHERE id = ?", (approval_id,))[0]
    return row["state"], row["decided_by_name"]


async def expire_pending(db_path: Path) -> None:
    """What start-up does to an earlier run's waiting approvals (their calls died with the process)."""
    db = await open_database(db_path)
    try:
        await ApprovalStore(db).expire_pending(now=utc_now())
    finally:
        await db.close()
