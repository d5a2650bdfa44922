"""What the router keeps per thread, and the small conversions between events, log rows and prompts.

Kept apart from ``threads.py`` so the router module reads as the rules it enforces.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field

from agent.session import AgentSession
from agent.summarize import Interruptible
from bots.messages import Attachment, ThreadKey
from bots.usage import UsageRecorder
from storage.erasure import ErasureStore
from storage.log import LoggedMessage, ThreadLog
from storage.sessions import CardStore, DeliveredEvents, SessionStore


@dataclass(eq=False)
class ThreadState:
    """One thread as this process knows it: its lock, its live session (if any), and its answer worker.

    ``inflight`` holds the platform ids of messages queued or waiting on a card, so a redelivery while they
    wait does nothing; ``idle`` says the state can be dropped (evicted) without losing work.
    """

    key: ThreadKey
    thread_id: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session: AgentSession | None = None
    inflight: set[str] = field(default_factory=set)
    worker: asyncio.Task[None] | None = None
    wake: bool = False
    card_open: bool | None = None  # None: not known yet in this process; ask SQLite
    answered_through: int = 0  # the highest log id a posted reply of this process has covered
    session_id: int | None = None  # the sessions row of the live session
    pinned: int = 0  # flows (a card being resolved) that need the state kept, however idle it looks
    forgotten: bool = False  # the thread was purged: whatever still runs for it must not write
    catch_up: Interruptible = field(default_factory=Interruptible)  # the catch-up summary being written

    @property
    def idle(self) -> bool:
        """Nothing runs for the thread: its live session may be evicted without losing work."""
        return not self.lock.locked() and self.worker is None and not self.inflight and not self.pinned

    @property
    def droppable(self) -> bool:
        """Nothing runs and nothing waits in memory alone: the whole state may go (SQLite has the rest)."""
        return not self.lock.locked() and self.worker is None and not self.pinned


@dataclass(frozen=True, slots=True)
class RouterStores:
    """The storage repositories the router works through (the composition root builds them)."""

    log: ThreadLog
    sessions: SessionStore
    cards: CardStore
    events: DeliveredEvents
    erasures: ErasureStore
    usage: UsageRecorder = field(default_factory=lambda: UsageRecorder(None))


def key_columns(key: ThreadKey) -> dict[str, str]:
    return {"platform": key.platform, "workspace": key.workspace, "channel": key.channel, "thread": key.thread}


def attachment_json(attachment: Attachment) -> dict[str, object]:
    return asdict(attachment)


def prompt_text(message: LoggedMessage) -> str:
    """The message as the model should read it: its text, then its attachments."""
    parts = [message.content] if message.content else []
    for attachment in message.attachments:
        label = (
            f"[attachment: {attachment.get('filename')} ({attachment.get('content_type')}, "
            f"{attachment.get('size_bytes')} bytes)]"
        )
        text = attachment.get("text")
        parts.append(f"{label}\n{text}" if text else label)
    return "\n".join(parts) if parts else "(no text)"
