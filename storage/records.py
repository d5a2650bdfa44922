"""What the stores hand back, the same on every backend: plain frozen dataclasses and a few pure helpers.

The stores build these from either backend's rows (``record_from_row``), so the router, the CLI and the tests
never see a driver's row type. Nothing here imports a database driver.
"""

from __future__ import annotations

import enum
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar

# A reply is logged under ``local-<uuid>`` before it is posted, then given the platform's id (set_platform_id).
PROVISIONAL_ID_PREFIX = "local-"
MAX_BATCH = 500  # messages per group commit

KIND_DELETED = "deleted"
KIND_EDITED = "edited"
KIND_THREAD = "thread"

REMOVED_EXCERPT = "(removed: it quoted a message that was deleted or edited)"
MAX_SEARCH_TERMS = 16


def iso(moment: datetime) -> str:
    """The ``*_utc`` text convention of every backend: ISO-8601 in UTC, so text order is time order."""
    return moment.astimezone(UTC).isoformat()


class ColumnRow(Protocol):
    """A row whose columns can be read by name: ``sqlite3.Row`` and psycopg's dict rows both are."""

    def __getitem__(self, key: str, /) -> Any: ...


R = TypeVar("R")


@functools.cache
def _columns(record: type) -> tuple[str, ...]:
    return tuple(field.name for field in fields(record))


def record_from_row(record: Callable[..., R], row: ColumnRow) -> R:
    """The dataclass ``record`` built from the row's columns of the same names as its fields."""
    return record(*(row[name] for name in _columns(record)))  # type: ignore[arg-type]


class ThreadGone(LookupError):
    """The thread row a write names no longer exists: it was forgotten (``threadkeeper forget``) meanwhile."""


@dataclass(frozen=True, slots=True)
class LoggedMessage:
    """One row of the log."""

    id: int
    thread_id: int
    platform_message_id: str
    author_id: str
    author_name: str
    role: str
    content: str
    attachments: list[dict[str, Any]]
    reply_state: str | None
    sent_utc: str
    edited: bool
    deleted: bool
    replaced: bool = False  # an answer a retry replaced: kept in the log, never presented as current
    transcript: str | None = None  # what its audio said (bots/files/voice.py), once transcribed

    @classmethod
    def from_row(cls, row: ColumnRow) -> LoggedMessage:
        return cls(
            id=int(row["id"]),
            thread_id=int(row["thread_id"]),
            platform_message_id=row["platform_message_id"],
            author_id=row["author_id"],
            author_name=row["author_name"],
            role=row["role"],
            content=row["content"],
            attachments=[] if row["attachments_json"] == "[]" else json.loads(row["attachments_json"]),
            reply_state=row["reply_state"],
            sent_utc=row["sent_utc"],
            edited=row["edited_utc"] is not None,
            deleted=row["deleted_utc"] is not None,
            replaced=row["replaced_utc"] is not None,
            transcript=row["transcript"],
        )


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message on its way into the log (both backends' group commits write these, in this column order)."""

    thread_id: int
    platform_message_id: str
    author_id: str
    author_name: str
    role: str
    content: str
    attachments_json: str
    reply_state: str | None
    sent_utc: str
    logged_utc: str


MESSAGE_COLUMNS = (
    "id, thread_id, platform_message_id, author_id, author_name, role, content, attachments_json, "
    "reply_state, sent_utc, edited_utc, deleted_utc, replaced_utc, transcript"
)


@dataclass(frozen=True, slots=True)
class ThreadRecord:
    id: int
    platform: str
    workspace: str
    channel: str
    thread: str
    title: str | None
    created_utc: str
    last_message_utc: str | None


THREAD_COLUMNS = "id, platform, workspace, channel, thread, title, created_utc, last_message_utc"


@dataclass(frozen=True, slots=True)
class StoredSummary:
    text: str
    through_message_id: int


@dataclass(frozen=True, slots=True)
class CardRecord:
    id: int
    thread_id: int
    card_message_id: str | None
    state: str
    resolved_by_name: str | None


@dataclass(frozen=True, slots=True)
class Erasure:
    """One journal row: ``message_id`` changed (deleted or edited) in ``thread_id``, or the whole thread went.

    ``title_forgotten``: the thread's title was made from that message and was blanked with it, so whatever the
    platform shows as the thread's title must be renamed too (by whichever process follows the journal, since the
    one that wrote the row may hold no platform connection: ``forget --user``, retention)."""

    id: int
    thread_id: int
    message_id: int | None
    kind: str
    title_forgotten: bool = False


@dataclass(frozen=True, slots=True)
class CallEnd:
    """How a journaled call ended (``done``, ``failed``, ``denied``, ``expired``), with its result as the model
    saw it."""

    call_id: str
    state: str
    result: str
    is_error: bool
    duration_ms: int
    approval: str
    decided_by: str | None
    cites: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class MessageChange:
    """A message deleted or edited on the platform: its log id, and whether the thread's title was made from it
    (the title is then blanked with the text, and whatever shows the old title must follow)."""

    message_id: int
    title_forgotten: bool


@dataclass(frozen=True, slots=True)
class UserErasure:
    """What ``forget --user`` removed in one thread."""

    thread_id: int
    thread: str
    title: str | None
    messages: int


def group_by_thread(rows: list[Any], *, titles: dict[int, str | None]) -> list[UserErasure]:
    """Rows (thread_id, thread) of one person's messages, counted per thread in first-seen order, with the titles
    the threads have after the erasure."""
    by_thread: dict[int, UserErasure] = {}
    for row in rows:
        seen = by_thread.get(row["thread_id"])
        by_thread[row["thread_id"]] = UserErasure(
            int(row["thread_id"]), row["thread"], titles.get(int(row["thread_id"])), 1 + (seen.messages if seen else 0)
        )
    return list(by_thread.values())


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One message that matched, with its exact text."""

    message_id: int
    author_name: str
    role: str
    sent_utc: str
    content: str
    transcript: str | None = None  # a voice message's transcript (it may be what matched)


def search_words(text: str) -> list[str]:
    """The distinct lower-case words of a model's query, at most MAX_SEARCH_TERMS: nothing else reaches SQL."""
    return list(dict.fromkeys(re.findall(r"\w+", text.lower())))[:MAX_SEARCH_TERMS]


@dataclass(frozen=True, slots=True)
class TrailEntry:
    id: int
    after_message_id: int
    tool: str
    arguments_json: str
    result_excerpt: str
    is_error: bool
    duration_ms: int
    approval: str
    decided_by: str | None
    created_utc: str
    state: str = "done"  # the call's journal state (storage/journal.py); 'done' for every finished call


def trail_from_row(row: ColumnRow) -> TrailEntry:
    return TrailEntry(
        id=int(row["id"]),
        after_message_id=int(row["after_message_id"]),
        tool=row["tool"],
        arguments_json=row["arguments_json"],
        result_excerpt=row["result_excerpt"],
        is_error=bool(row["is_error"]),
        duration_ms=int(row["duration_ms"]),
        approval=row["approval"],
        decided_by=row["decided_by"],
        created_utc=row["created_utc"],
        state=row["state"],
    )


CALL_STATES = ("requested", "waiting", "allowed", "running", "done", "failed", "denied", "expired")
FINISHED_CALL_STATES = ("done", "failed", "denied", "expired")


@dataclass(frozen=True, slots=True)
class JournalCall:
    """One call of a journaled step, as far as it got."""

    call_id: str
    tool: str
    arguments_json: str
    state: str  # one of CALL_STATES
    result: str  # the result as the model saw it ('' until the call ends)
    is_error: bool
    decided_by: str | None
    approval_id: int | None = None  # the approval card the call waits on (or waited on)


@dataclass(frozen=True, slots=True)
class JournalStep:
    """One model step of a turn not yet closed: its text so far and its calls, in the order asked."""

    id: int
    after_message_id: int
    text: str
    calls: tuple[JournalCall, ...]


def interleave(messages: list[LoggedMessage], trail: list[TrailEntry]) -> list[LoggedMessage | TrailEntry]:
    """Messages and tool calls in the order they happened.

    A trail entry was logged after the last message its turn answered, so it goes right after that message (or
    the last earlier one still there), before the reply that followed the calls.
    """
    calls = sorted(trail, key=lambda e: (e.after_message_id, e.id))
    items: list[LoggedMessage | TrailEntry] = []
    next_call = 0
    for message in messages:
        while next_call < len(calls) and calls[next_call].after_message_id < message.id:
            items.append(calls[next_call])
            next_call += 1
        items.append(message)
    items.extend(calls[next_call:])
    return items


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    id: int
    thread_id: int
    tool: str
    arguments_preview: str
    state: str
    card_message_id: str | None
    decided_by_name: str | None
    created_utc: str | None = None  # when the card was asked for, by the clock of the process that asked
    # Seconds since it was asked for, by the database's clock (None: asked for by an earlier version); its
    # APPROVAL_TIMEOUT_S counts from there, the same on every worker whatever their own clocks say.
    age_s: float | None = None


@dataclass(frozen=True, slots=True)
class UsageRow:
    thread_id: int | None
    user_id: str | None
    purpose: str  # "answer" or "summary"
    model: str
    prompt_tokens: int
    completion_tokens: int
    tokens_counted: bool
    cost_usd: float | None
    created_utc: datetime


class Grouping(enum.StrEnum):
    THREAD = "thread"
    USER = "user"
    DAY = "day"


@dataclass(frozen=True, slots=True)
class UsageTotal:
    """One line of ``threadkeeper stats``."""

    key: str
    answers: int
    summaries: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    unpriced_calls: int  # calls whose model litellm's cost map does not know


Rating = Literal["positive", "negative"]


@dataclass(frozen=True, slots=True)
class FeedbackEntry:
    """One person's feedback on one answer, as the export shows it."""

    message_id: int  # the answer's row in messages
    platform_message_id: str
    user_id: str
    user_name: str
    rating: Rating
    given_utc: str


@dataclass(frozen=True, slots=True)
class SlackInstallation:
    """One workspace's (or, with ``team_id`` "", one org's) installation of the Slack app, as storage keeps it.

    ``tokens_ciphertext`` is opaque here: the tokens are encrypted before they reach storage
    (bots/slack/install/); ``details_json`` holds the rest of what Slack returned, none of it secret."""

    enterprise_id: str
    team_id: str
    team_name: str | None
    bot_user_id: str | None
    bot_scopes: str  # comma-separated, as Slack gives them
    details_json: str
    tokens_ciphertext: str
    installed_utc: str
    updated_utc: str


@dataclass(frozen=True, slots=True)
class SlackChannelKeeper:
    """The installation (org ``enterprise_id``, workspace ``team_id``) that keeps a Slack Connect channel."""

    enterprise_id: str
    team_id: str


@dataclass(frozen=True, slots=True)
class OpenJoin:
    """A thread whose history before ``before_message_id`` (the mention's platform id) is still to be logged, under
    ``reserved_ids`` (``storage/joins.py``); ``replied_to``: the message a mention that starts its own thread replies
    to, whose reply chain is that history (a Discord reply in a channel)."""

    thread_id: int
    before_message_id: str
    reserved_ids: tuple[int, ...]
    replied_to: str | None = None
