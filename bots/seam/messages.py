"""Platform-neutral events: what adapters hand the router.

Adapters translate a discord.py or slack-bolt payload into one of these and nothing else crosses into
``bots/router/threads.py``. Each type keeps the raw payload as an escape hatch for debugging, never for logic.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ThreadKey:
    """Where a conversation lives: one key, one agent session.

    ``workspace`` is a Discord guild id or a Slack team id ("" for DMs where the platform has none),
    ``channel`` the parent channel, ``thread`` the thread's own id (a Discord thread channel id, a Slack
    ``thread_ts``, a console thread name).
    """

    platform: str
    workspace: str
    channel: str
    thread: str

    def __str__(self) -> str:
        return f"{self.platform}:{self.workspace}:{self.channel}:{self.thread}"

    def is_same_place(self, other: ThreadKey) -> bool:
        """Same platform, channel and thread: the same conversation wherever the workspace id was read from.

        The workspace is left out on purpose: Slack names it differently in events and in interaction
        payloads (the installation's team, a clicker's team in a shared channel, an org in Enterprise Grid),
        while channel and thread ids are unique on their platform.
        """
        return (self.platform, self.channel, self.thread) == (other.platform, other.channel, other.thread)

    @classmethod
    def parse(cls, text: str) -> ThreadKey:
        """Inverse of ``str()``; raises ValueError on anything else."""
        parts = text.split(":")
        if len(parts) != 4 or not parts[0] or not parts[3]:
            raise ValueError(f"not a thread key: {text!r}")
        return cls(*parts)


@dataclass(frozen=True, slots=True)
class Author:
    """Who wrote a message or clicked a button."""

    id: str
    display_name: str


@dataclass(frozen=True, slots=True)
class FileSource:
    """Where the bot can download an attachment: a URL and the headers it needs (Slack's bearer token).

    Lives in memory only, never in the log; ``headers`` stay out of ``repr`` so a token never reaches a log line.
    """

    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    local_path: str | None = None  # a file on this machine: only the console, for its own user, makes these
    platform: str = ""  # whose file hosts may serve it (``bots/files/downloads.py``); the policy decides


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file attached to a message, as the platform describes it (``bots/files/attachments.py`` reads it).

    ``content_type`` and ``size_bytes`` are what the platform says until the file is read; ``source`` is how
    to download it (None: it cannot be, e.g. a message backfilled from a log row).
    """

    filename: str
    content_type: str
    size_bytes: int
    source: FileSource | None = field(default=None, compare=False, repr=False)
    unreadable: str | None = field(default=None, compare=False)  # why the platform's description is unusable
    voice: bool = field(default=False, compare=False)  # the platform says it is a voice message / audio clip
    duration_s: float | None = field(default=None, compare=False)  # the audio's length, as the platform says

    @classmethod
    def described(
        cls,
        *,
        name: object,
        content_type: object,
        size: object,
        source: FileSource | None,
        voice: bool = False,
        duration_s: object = None,
    ) -> Attachment:
        """A file from a payload's untrusted fields: odd ones are made safe, never raised on.

        A name or type that is not text gets a neutral one; a size that is not a whole number of bytes ("12kb",
        ``{}``, inf, nan, a negative) makes the file unreadable, so it is named to the model and never fetched.
        A duration that is not a finite, non-negative number is taken as not given.
        """
        parsed = _size(size)
        return cls(
            filename=name if isinstance(name, str) and name else "file",
            content_type=content_type if isinstance(content_type, str) and content_type else UNKNOWN_TYPE,
            size_bytes=parsed if parsed is not None else 0,
            source=source if parsed is not None else None,
            unreadable=None if parsed is not None else MALFORMED_FILE,
            voice=voice,
            duration_s=_seconds(duration_s),
        )

    @classmethod
    def malformed(cls) -> Attachment:
        """A file entry that is not a description at all (a number where an object should be)."""
        return cls("file", UNKNOWN_TYPE, 0, unreadable=MALFORMED_FILE)


UNKNOWN_TYPE = "application/octet-stream"
MALFORMED_FILE = "the platform described it in a way the bot cannot read"
MAX_SIZE_DIGITS = 18  # int() refuses text of more than 4,300 digits; no file has a size of more than 18


def _seconds(value: object) -> float | None:
    """A duration from a payload, or None when it is not a finite, non-negative number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _size(value: object) -> int | None:
    """A byte count from a payload, or None when it is not one (bools, text, non-finite or fractional floats).

    A missing size is 0, as the platform not saying: the download's own cap still holds.
    """
    if value is None:
        return 0
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= MAX_SIZE_DIGITS:
        return int(value)
    return None


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A message a platform delivered in a thread the bot takes part in.

    ``message_id`` is the platform's id (Discord snowflake, Slack ts): together with the thread it makes the
    log idempotent. ``event_key`` is the platform's delivery id when it has one (Slack ``event_id``) so a
    redelivery can be recognised before any work is done.
    """

    thread: ThreadKey
    message_id: str
    author: Author
    text: str
    sent_utc: datetime = field(default_factory=utc_now)
    attachments: tuple[Attachment, ...] = ()
    thread_title: str | None = None
    event_key: str | None = None
    raw: object = field(default=None, compare=False, repr=False)
    # The title was made from this message's text (not named by the platform or the console): it then follows
    # the message, and goes when the message is deleted, edited or forgotten.
    title_from_text: bool = False
    # What the router's reply mode needs to know (``bots/router/reply_modes.py``); the adapter reads it off the
    # platform's message: it mentions the bot (its user or its role; every message of a DM counts), or it is a
    # reply to one of the bot's own messages (Discord's replies; Slack has none inside a thread).
    mentions_bot: bool = False
    replies_to_bot: bool = False
    # The platform id of the earlier message of the same channel this one replies to (a Discord reply), if any: a
    # mention that starts a thread and replies to a message brings its reply chain along (``bots/router/joining.py``).
    replies_to: str | None = None


class CardAction(enum.StrEnum):
    """The two buttons on a "Where were we?" card."""

    CATCH_UP = "catch_up"
    FRESH = "fresh"


@dataclass(frozen=True, slots=True)
class CardClick:
    """Someone pressed a card button. ``card_id`` comes back from the button's custom id / value.

    ``thread`` is where the click happened, when the platform says. A button names its card by number only,
    so the router refuses a click from anywhere but the card's own thread (stale buttons, a forged id).
    """

    card_id: int
    action: CardAction
    user: Author
    raw: object = field(default=None, compare=False, repr=False)
    thread: ThreadKey | None = None


class ApprovalAction(enum.StrEnum):
    """The two buttons on a tool-call approval card."""

    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class ApprovalClick:
    """Someone pressed Allow or Deny on an approval card; ``thread`` is where, when the platform says.

    ``card_message_id`` is the card's own message, when the platform says: a process killed between posting a card
    and storing its id leaves a card no one could update, and the click is the one place the id comes back.
    """

    approval_id: int
    action: ApprovalAction
    user: Author
    thread: ThreadKey | None = None
    raw: object = field(default=None, compare=False, repr=False)
    card_message_id: str | None = None


@dataclass(frozen=True, slots=True)
class ArgumentsClick:
    """Someone pressed "Show all" on an approval card; ``thread`` is where, when the platform says."""

    approval_id: int
    user: Author
    thread: ThreadKey | None = None
    raw: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class MessageEdit:
    """A logged message's text changed on the platform."""

    thread: ThreadKey
    message_id: str
    text: str
    edited_utc: datetime = field(default_factory=utc_now)


@dataclass(frozen=True, slots=True)
class MessageDeletion:
    """A logged message was deleted on the platform: its content leaves the log.

    ``thread`` names where the platform says it was; the router forgets it in every thread of that channel that
    logged it (``bots/router/forgetting.py``), so a channel's key is enough. The same holds for :class:`MessageEdit`.
    """

    thread: ThreadKey
    message_id: str
    deleted_utc: datetime = field(default_factory=utc_now)


@dataclass(frozen=True, slots=True)
class StopRequest:
    """Someone asked to stop the answer being written in ``thread`` (Slack's Stop, Discord's button or /stop,
    the console's Ctrl-C). The router decides; see ``bots/router/stopping.py``."""

    thread: ThreadKey
    user: Author
    raw: object = field(default=None, compare=False, repr=False)
