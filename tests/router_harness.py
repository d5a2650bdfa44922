"""A recording outbox and a router harness for scenario tests of the platform-neutral core.

The outbox satisfies ``ThreadOutbox`` the way an adapter does (it consumes the stream), and records what a
platform would have shown. A restart is leaving one ``running_router`` block and entering another on the same
settings: a new router, new memory, the same SQLite file.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bots.app import open_router
from bots.config import Settings
from bots.router.threads import ThreadRouter
from bots.seam.messages import Author, CardAction, CardClick, IncomingMessage, ThreadKey
from bots.seam.ports import ApprovalCard, CatchUpCard, ClickResult, SessionStatus

PLATFORM = "test"
_ids = itertools.count(1)


@dataclass
class Reply:
    thread: ThreadKey
    text: str
    message_ids: list[str]


@dataclass
class RecordingOutbox:
    replies: list[Reply] = field(default_factory=list)
    notices: list[tuple[ThreadKey, str]] = field(default_factory=list)
    cards_posted: list[CatchUpCard] = field(default_factory=list)
    card_updates: list[tuple[str, CatchUpCard]] = field(default_factory=list)
    approvals_posted: list[ApprovalCard] = field(default_factory=list)
    approval_updates: list[tuple[str, ApprovalCard]] = field(default_factory=list)
    statuses: list[tuple[ThreadKey, str | None]] = field(default_factory=list)
    session_statuses: list[tuple[ThreadKey, SessionStatus]] = field(default_factory=list)
    renames: list[tuple[ThreadKey, str]] = field(default_factory=list)

    async def stream_reply(self, *, thread: ThreadKey, deltas: AsyncIterator[str]) -> list[str]:
        text = ""
        async for delta in deltas:
            text += delta
        ids = [f"reply-{next(_ids)}"]
        self.replies.append(Reply(thread, text, ids))
        return ids

    async def post_notice(self, *, thread: ThreadKey, text: str) -> None:
        self.notices.append((thread, text))

    async def post_card(self, *, card: CatchUpCard) -> str:
        self.cards_posted.append(card)
        return f"card-msg-{card.card_id}"

    async def update_card(self, *, card: CatchUpCard, message_id: str) -> None:
        self.card_updates.append((message_id, card))

    async def find_card(self, *, card: CatchUpCard) -> str | None:
        posted = [c for c in self.cards_posted if c.card_id == card.card_id]
        return f"card-msg-{card.card_id}" if posted else None

    async def post_approval(self, *, card: ApprovalCard) -> str:
        self.approvals_posted.append(card)
        return f"approval-msg-{card.approval_id}"

    async def update_approval(self, *, card: ApprovalCard, message_id: str) -> None:
        self.approval_updates.append((message_id, card))

    async def show_status(self, *, thread: ThreadKey, text: str | None) -> None:
        self.statuses.append((thread, text))

    async def set_session_status(self, *, thread: ThreadKey, status: SessionStatus, title: str | None = None) -> None:
        self.session_statuses.append((thread, status))

    async def rename_thread(self, *, thread: ThreadKey, title: str) -> None:
        self.renames.append((thread, title))

    def replies_in(self, thread: ThreadKey) -> list[str]:
        return [r.text for r in self.replies if r.thread == thread]


def thread_key(name: str = "t1") -> ThreadKey:
    return ThreadKey(platform=PLATFORM, workspace="w1", channel="c1", thread=name)


ALICE = Author(id="U-alice", display_name="Alice")
BOB = Author(id="U-bob", display_name="Bob")


def message(
    text: str,
    *,
    thread: ThreadKey | None = None,
    author: Author = ALICE,
    message_id: str | None = None,
    event_key: str | None = None,
) -> IncomingMessage:
    return IncomingMessage(
        thread=thread or thread_key(),
        message_id=message_id or f"m-{next(_ids)}",
        author=author,
        text=text,
        event_key=event_key,
    )


@dataclass
class Bot:
    router: ThreadRouter
    outbox: RecordingOutbox

    async def say(self, text: str, **kwargs: object) -> IncomingMessage:
        msg = message(text, **kwargs)  # type: ignore[arg-type]
        await self.router.handle_message(msg)
        await self.router.idle()
        return msg

    async def click(self, action: CardAction, *, card_id: int | None = None, user: Author = ALICE) -> ClickResult:
        card_id = card_id if card_id is not None else self.outbox.cards_posted[-1].card_id
        shown = [c for c in self.outbox.cards_posted if c.card_id == card_id]
        thread = shown[-1].thread if shown else thread_key()  # the click comes from the card's thread
        result = await self.router.handle_click(CardClick(card_id=card_id, action=action, user=user, thread=thread))
        await self.router.idle()
        return result


@asynccontextmanager
async def running_router(settings: Settings) -> AsyncIterator[Bot]:
    async with open_router(settings) as router:
        outbox = RecordingOutbox()
        router.register_outbox(PLATFORM, outbox)
        await router.resume(PLATFORM)
        await router.idle()
        yield Bot(router, outbox)
        await router.idle()


def db_rows(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
    """Read the bot's SQLite file the way an operator would (the bot keeps running on its own connection)."""
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    try:
        return list(connection.execute(sql, params))
    finally:
        connection.close()


def db_write(path: Path, sql: str, params: tuple[object, ...] = ()) -> int:
    """Change the SQLite file between runs (what a process killed at the wrong moment left); rows changed."""
    connection = sqlite3.connect(path)
    try:
        with connection:
            return connection.execute(sql, params).rowcount
    finally:
        connection.close()
