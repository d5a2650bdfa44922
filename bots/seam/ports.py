"""The seam between the router and the platform adapters.

The router decides *what* happens in a thread; an adapter decides *how it looks* on its platform. The router
acts only through :class:`ThreadOutbox`, a Protocol with keyword-only async methods, so the Discord adapter,
the Slack adapter, the terminal and the tests' recording outbox all satisfy it without inheriting anything.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

from bots.seam.messages import ApprovalAction, Attachment, CardAction, IncomingMessage, ThreadKey


class CardState(enum.StrEnum):
    """What a "Where were we?" card shows. Only PENDING has live buttons."""

    PENDING = "pending"
    CATCHING_UP = "catching_up"
    CAUGHT_UP = "caught_up"
    FRESH = "fresh"


CARD_BUTTON_PREFIX = "tk-card"


ActionT = TypeVar("ActionT", bound=enum.StrEnum)


def _button_id(prefix: str, number: int, action: enum.StrEnum) -> str:
    return f"{prefix}:{number}:{action.value}"


def _parse_button_id(value: str, *, prefix: str, actions: type[ActionT]) -> tuple[int, ActionT] | None:
    parts = value.split(":")
    if len(parts) != 3 or parts[0] != prefix or not parts[1].isdigit():
        return None
    try:
        return int(parts[1]), actions(parts[2])
    except ValueError:
        return None


def card_button_id(card_id: int, action: CardAction) -> str:
    """The custom_id / action value of a card button: it carries the card (hence the thread) and the action.

    The card row in SQLite maps the id to its thread, so the button works after any number of restarts.
    """
    return _button_id(CARD_BUTTON_PREFIX, card_id, action)


def parse_card_button_id(value: str) -> tuple[int, CardAction] | None:
    """Inverse of :func:`card_button_id`; None for anything that is not one of our buttons."""
    return _parse_button_id(value, prefix=CARD_BUTTON_PREFIX, actions=CardAction)


@dataclass(frozen=True, slots=True)
class CatchUpCard:
    """The "Where were we?" card as the router wants it shown; adapters render it (see bots/replies/render.py)."""

    card_id: int
    thread: ThreadKey
    state: CardState
    chosen_by: str | None = None
    note: str | None = None

    @property
    def buttons_live(self) -> bool:
        return self.state is CardState.PENDING

    def button_id(self, action: CardAction) -> str:
        return card_button_id(self.card_id, action)


class ForgetAction(enum.StrEnum):
    """The one button under the forget command's question."""

    CONFIRM = "confirm"


FORGET_BUTTON_PREFIX = "tk-forget"


def forget_button_id(thread_id: int) -> str:
    """The custom_id / action value of "Forget this thread": the thread's row id, checked against the click's place."""
    return _button_id(FORGET_BUTTON_PREFIX, thread_id, ForgetAction.CONFIRM)


def parse_forget_button_id(value: str) -> int | None:
    """The thread row id a forget button names; None for anything else."""
    parsed = _parse_button_id(value, prefix=FORGET_BUTTON_PREFIX, actions=ForgetAction)
    return None if parsed is None else parsed[0]


class ApprovalState(enum.StrEnum):
    """What a tool-call approval card shows. Only PENDING has live buttons."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    TIMED_OUT = "timed_out"
    EXPIRED = "expired"


APPROVAL_BUTTON_PREFIX = "tk-approval"


def approval_button_id(approval_id: int, action: ApprovalAction) -> str:
    """The custom_id / action value of an approval button: the approval row in SQLite maps it to its thread."""
    return _button_id(APPROVAL_BUTTON_PREFIX, approval_id, action)


def parse_approval_button_id(value: str) -> tuple[int, ApprovalAction] | None:
    """Inverse of :func:`approval_button_id`; None for anything that is not one of our approval buttons."""
    return _parse_button_id(value, prefix=APPROVAL_BUTTON_PREFIX, actions=ApprovalAction)


class ArgumentsAction(enum.StrEnum):
    """The one button that shows a tool call's full arguments."""

    SHOW_ALL = "show_all"


ARGUMENTS_BUTTON_PREFIX = "tk-args"


def arguments_button_id(approval_id: int) -> str:
    """The custom_id / action value of "Show all": the approval id only; the arguments are read from its row."""
    return _button_id(ARGUMENTS_BUTTON_PREFIX, approval_id, ArgumentsAction.SHOW_ALL)


def parse_arguments_button_id(value: str) -> int | None:
    """The approval id a "Show all" button names; None for anything else."""
    parsed = _parse_button_id(value, prefix=ARGUMENTS_BUTTON_PREFIX, actions=ArgumentsAction)
    return None if parsed is None else parsed[0]


@dataclass(frozen=True, slots=True)
class ApprovalCard:
    """A tool call waiting for a person's yes or no, as the router wants it shown (see bots/replies/render.py).

    ``arguments_json`` is the call's full arguments as JSON, keys in the tool's schema order; adapters show
    :func:`bots.tools.approval_arguments.argument_summary` of it. It is model output: shown as code, never as markup.
    """

    approval_id: int
    thread: ThreadKey
    tool: str
    arguments_json: str
    state: ApprovalState
    decided_by: str | None = None

    @property
    def buttons_live(self) -> bool:
        return self.state is ApprovalState.PENDING

    def button_id(self, action: ApprovalAction) -> str:
        return approval_button_id(self.approval_id, action)

    @property
    def show_all_id(self) -> str:
        return arguments_button_id(self.approval_id)


class SessionStatus(enum.StrEnum):
    """A thread's state as a platform with agent sessions shows it (Slack's ``agents.sessions.setStatus``).

    ``processing`` while a turn runs, ``active`` between turns, ``suspended`` while the bot is down or the thread
    waits on its "Where were we?" card, ``closed`` once forgotten.
    """

    PROCESSING = "processing"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class ThreadOutbox(Protocol):
    """What the router may do on a platform. One instance per platform, registered with the router."""

    async def stream_reply(self, *, thread: ThreadKey, deltas: AsyncIterator[str]) -> list[str]:
        """Post a reply while ``deltas`` streams text; return the ids of the messages posted, in order.

        Exceptions raised by ``deltas`` (the model failed) must propagate after the adapter has cleaned up
        what it showed (e.g. removed a placeholder); the router then posts a friendly notice.
        """
        ...

    async def post_notice(self, *, thread: ThreadKey, text: str) -> None:
        """Post a short, plain message in the thread (a friendly failure note, say)."""
        ...

    async def post_card(self, *, card: CatchUpCard) -> str:
        """Post the card in ``card.thread``; return the posted message's id."""
        ...

    async def update_card(self, *, card: CatchUpCard, message_id: str) -> None:
        """Show ``card``'s new state on the already posted card message."""
        ...

    async def find_card(self, *, card: CatchUpCard) -> str | None:
        """The id of a message the bot already posted in ``card.thread`` for ``card.card_id``, or None.

        Only for recovery: a card recorded in the database without its message id (an earlier run died
        between the post and storing the id) is looked for before it is posted again. It reads a bounded part
        of the thread's history; it may raise, and the caller then treats the card as never shown.
        """
        ...

    async def post_approval(self, *, card: ApprovalCard) -> str:
        """Post the approval card (Allow / Deny) in ``card.thread``; return the posted message's id."""
        ...

    async def update_approval(self, *, card: ApprovalCard, message_id: str) -> None:
        """Show the approval's outcome on the posted card (no buttons once decided)."""
        ...

    async def show_status(self, *, thread: ThreadKey, text: str | None) -> None:
        """Show a transient progress line ("Running files__read_file…") for the reply being streamed in
        ``thread``, or clear it (``None``). It is never part of the reply's text. Best effort: never raises."""
        ...

    async def set_session_status(self, *, thread: ThreadKey, status: SessionStatus, title: str | None = None) -> None:
        """Show the thread's state natively where the platform has agent sessions (Slack); a no-op elsewhere.

        ``title`` names a session the call creates. Best effort: never raises."""
        ...

    async def rename_thread(self, *, thread: ThreadKey, title: str) -> None:
        """Show ``title`` wherever the platform shows a title the bot gave the thread (Slack's agent session and
        assistant thread, a Discord thread the bot named); a no-op elsewhere. Best effort: never raises."""
        ...


class HistoryRefused(Exception):
    """The platform would not show a thread's earlier messages (a missing permission or scope: the reason says)."""


class ThreadHistory(Protocol):
    """How the router reads the messages a thread held before the bot was brought into it (``bots/router/joining.py``).

    The adapter fetches and translates; the router decides when to read and what to log.
    """

    async def read_history(self, *, thread: ThreadKey, before: str, limit: int) -> list[IncomingMessage]:
        """Up to ``limit`` of the people's messages sent in ``thread`` before the message ``before``, the newest
        ones, oldest first, each translated as if it had been delivered (author, time, attachments described).

        Bots' messages and messages of people the allowlists exclude are left out. Raises :class:`HistoryRefused`
        when the platform refuses to show the history.
        """
        ...


@runtime_checkable
class ReplyChainHistory(Protocol):
    """A :class:`ThreadHistory` of a platform whose channel messages reply to one another (Discord's replies).

    A mention there that replies to an earlier message starts a thread of its own, yet it continues a conversation:
    the chain of replies it answers is that thread's history. The router reads it through this when the platform's
    reader has it (``bots/router/joining.py``); a platform without replies implements only ``read_history``.
    """

    async def read_reply_chain(self, *, thread: ThreadKey, replied_to: str, limit: int) -> list[IncomingMessage]:
        """Up to ``limit`` messages of the chain that ends with ``replied_to`` (a message of ``thread.channel``):
        it, the message it replies to, and so on, oldest first, each translated into ``thread`` as if it had been
        delivered there. Bots' messages and people the allowlists exclude are left out, as ``read_history`` does;
        a chain that reaches a deleted message ends there. Raises :class:`HistoryRefused` when the platform refuses.
        """
        ...


class FilesRefused(Exception):
    """The platform would not show a message again (a missing permission or scope, an error: the reason says)."""


class MessageFiles(Protocol):
    """How the router gets fresh download sources for a waiting message's files (``bots/files/refetching.py``).

    A file's source (a signed Discord CDN URL that expires, a Slack ``url_private`` and the token it needs) is held in
    memory only, never in the log; a restart or another worker's takeover leaves a waiting message's files without
    one. The adapter fetches that message from its platform once more and describes its files as a delivery does.
    """

    async def message_files(self, *, thread: ThreadKey, message_id: str) -> tuple[Attachment, ...] | None:
        """The files of the message ``message_id`` in ``thread`` as the platform describes them now, in its order,
        each with a fresh source; None when the platform no longer has the message (it was deleted).

        Raises :class:`FilesRefused` when the platform will not show it.
        """
        ...


@dataclass(frozen=True, slots=True)
class FullArguments:
    """A tool call's full arguments for the person who pressed "Show all" (indented JSON, model output)."""

    approval_id: int
    tool: str
    text: str


@dataclass(frozen=True, slots=True)
class ClickResult:
    """What the clicker alone should be told (a race lost, a stale card) or shown (full arguments), or nothing."""

    private_note: str | None = None
    arguments: FullArguments | None = None


class BackgroundService(Protocol):
    """Something that runs beside the bot once a platform is up (the MCP servers)."""

    async def start(self) -> None: ...

    async def wait_settled(self) -> None: ...

    async def stop(self) -> None: ...


class PlatformAdapter(Protocol):
    """A connector's lifecycle, as the CLI drives it."""

    name: str

    async def start(self) -> None:
        """Connect, register the outbox with the router, and return once events are flowing."""
        ...

    async def stop(self) -> None:
        """Stop taking events, let in-flight replies finish or cancel them, and disconnect."""
        ...

    async def is_connected(self) -> bool:
        """True while events can flow (what /readyz reports)."""
        ...
