"""Slack payloads to threadkeeper events, kept apart from any network code.

Every function takes the plain dicts slack-bolt hands a listener and returns one of ``bots.seam.messages``'
types, or None for anything the bot should not act on. A malformed payload is a ``SlackPayloadError``, never a
crash deep in a handler; a malformed file description is a file the bot names as unreadable, and the message
still counts.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bots.seam.messages import (
    ApprovalClick,
    ArgumentsClick,
    Attachment,
    Author,
    CardClick,
    FileSource,
    IncomingMessage,
    MessageDeletion,
    MessageEdit,
    ThreadKey,
)
from bots.seam.ports import parse_approval_button_id, parse_arguments_button_id, parse_card_button_id

log = logging.getLogger(__name__)

PLATFORM = "slack"
USER_SUBTYPES = frozenset({None, "file_share", "thread_broadcast", "me_message"})
_SPACES = re.compile(r"[ \t]{2,}")


class SlackPayloadError(ValueError):
    """A payload lacks a field the bot needs."""


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise SlackPayloadError(f"missing or invalid {field!r}")
    return value


def ts_to_datetime(ts: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(ts), UTC)
    except (TypeError, ValueError, OverflowError):
        return datetime.now(UTC)


def team_of(body: Mapping[str, Any], event: Mapping[str, Any]) -> str:
    """The workspace a thread is keyed by: the app's installation, never the poster's org.

    In a Slack Connect (shared) channel ``event.team`` is the team of whoever wrote the message, so keying by
    it split one thread into one per org and an external user's follow-up was ignored. The installation's
    team is ``authorizations[0].team_id`` (slack-bolt's own ``extract_team_id`` prefers it for the same
    reason; the top-level ``team_id`` can be the workspace that owns the shared channel), and it is the same
    for every message of a thread whoever posts it.
    """
    authorizations = body.get("authorizations")
    if isinstance(authorizations, list) and authorizations and isinstance(authorizations[0], Mapping):
        installed = authorizations[0].get("team_id")
        if isinstance(installed, str) and installed:
            return installed
    for team in (body.get("team_id"), _mapping(body.get("team")).get("id"), event.get("team")):
        if isinstance(team, str) and team:
            return team
    return ""


def thread_of(*, team: str, channel: str, ts: str, thread_ts: str | None) -> ThreadKey:
    return ThreadKey(platform=PLATFORM, workspace=team, channel=channel, thread=thread_ts or ts)


def is_dm(thread: ThreadKey) -> bool:
    """A direct message (or the assistant / agent thread in one): Slack's DM channel ids start with D."""
    return thread.channel.startswith("D")


def is_users_message(event: Mapping[str, Any], *, bot_user_id: str | None) -> bool:
    """A person's message (a plain one, a file share, a broadcast reply, a /me), not a bot's or a change."""
    subtype = event.get("subtype")
    plain = subtype is None or (isinstance(subtype, str) and subtype in USER_SUBTYPES)
    return plain and not is_from_a_bot(event, bot_user_id=bot_user_id)


def is_from_a_bot(event: Mapping[str, Any], *, bot_user_id: str | None) -> bool:
    return bool(
        event.get("bot_id")
        or event.get("subtype") == "bot_message"
        or (bot_user_id is not None and event.get("user") == bot_user_id)
    )


def strip_mentions(text: str, *, bot_user_id: str | None) -> str:
    if bot_user_id:
        text = text.replace(f"<@{bot_user_id}>", "")
    return _SPACES.sub(" ", text).strip()


def attachments_of(
    event: Mapping[str, Any], *, download_headers: Mapping[str, str] | None = None
) -> tuple[Attachment, ...]:
    """The message's files, as Slack describes them, each with ``url_private`` and ``download_headers`` (the
    bot token) to download it; ``bots/files/downloads.py`` decides whether that URL is fetched and gets the token.

    Anything in ``files`` that is not a file description (``files: 5``, a number in the list, a size of "12kb")
    is an unreadable file, logged here and named as such to the model: never an exception that loses the message.
    """
    files = event.get("files")
    if not files:
        return ()
    if not isinstance(files, list):
        files = [None]  # not a list of descriptions: one file the bot cannot read
    attachments = tuple(_attachment(f, download_headers) for f in files)
    odd = sum(a.unreadable is not None for a in attachments)
    if odd:
        log.warning("a Slack message %s carried %d malformed file description(s)", _ts(event), odd)
    return attachments


def _attachment(file: object, headers: Mapping[str, str] | None) -> Attachment:
    if not isinstance(file, Mapping):
        return Attachment.malformed()
    return Attachment.described(
        name=file.get("name") or file.get("title"),
        content_type=file.get("mimetype"),
        size=file.get("size"),
        source=_source(file, headers),
        voice=file.get("subtype") == "slack_audio",  # an audio clip recorded in Slack
        duration_s=_duration_s(file),
    )


def _duration_s(file: Mapping[str, Any]) -> object:
    """An audio clip's length as Slack gives it (``duration_ms``), in seconds; anything odd is not a length."""
    ms = file.get("duration_ms")
    return ms / 1000 if isinstance(ms, int | float) and not isinstance(ms, bool) else None


def _source(file: Mapping[str, Any], headers: Mapping[str, str] | None) -> FileSource | None:
    url = file.get("url_private_download") or file.get("url_private")
    if not isinstance(url, str) or not url or headers is None:
        return None
    return FileSource(url=url, headers=dict(headers), platform=PLATFORM)


def _ts(event: Mapping[str, Any]) -> str:
    ts = event.get("ts")
    return ts if isinstance(ts, str) else "?"


def message_from(
    body: Mapping[str, Any],
    event: Mapping[str, Any],
    *,
    bot_user_id: str | None,
    display_name: str,
    download_headers: Mapping[str, str] | None = None,
) -> IncomingMessage:
    """An app_mention or a user's message event as an IncomingMessage (its thread is the reply thread).

    It mentions the bot when its text names the bot's user, or when it is a DM's (every DM is for the bot);
    Slack has no replies to one message inside a thread, so ``replies_to_bot`` stays False.
    """
    channel = _text(event.get("channel"), "channel")
    ts = _text(event.get("ts"), "ts")
    user = _text(event.get("user"), "user")
    text = event.get("text") if isinstance(event.get("text"), str) else ""
    thread_ts = event.get("thread_ts") if isinstance(event.get("thread_ts"), str) else None
    thread = thread_of(team=team_of(body, event), channel=channel, ts=ts, thread_ts=thread_ts)
    return IncomingMessage(
        thread=thread,
        message_id=ts,
        author=Author(id=user, display_name=display_name or user),
        text=strip_mentions(str(text), bot_user_id=bot_user_id),
        sent_utc=ts_to_datetime(ts),
        attachments=attachments_of(event, download_headers=download_headers),
        thread_title=strip_mentions(str(text), bot_user_id=bot_user_id)[:100] or None,
        event_key=body.get("event_id") if isinstance(body.get("event_id"), str) else None,
        raw=body,
        title_from_text=True,
        mentions_bot=is_dm(thread) or (bot_user_id is not None and f"<@{bot_user_id}>" in str(text)),
    )


def edit_from(body: Mapping[str, Any], event: Mapping[str, Any], *, bot_user_id: str | None) -> MessageEdit | None:
    """A user's edit, or None for a bot's message or a change that kept the text (a link preview, a new reply)."""
    changed = event.get("message")
    if not isinstance(changed, Mapping) or is_from_a_bot(changed, bot_user_id=bot_user_id):
        return None
    previous = event.get("previous_message")
    if isinstance(previous, Mapping) and previous.get("text") == changed.get("text"):
        return None
    ts = _text(changed.get("ts"), "message.ts")
    thread_ts = changed.get("thread_ts") if isinstance(changed.get("thread_ts"), str) else None
    return MessageEdit(
        thread=thread_of(
            team=team_of(body, event), channel=_text(event.get("channel"), "channel"), ts=ts, thread_ts=thread_ts
        ),
        message_id=ts,
        text=strip_mentions(str(changed.get("text") or ""), bot_user_id=bot_user_id),
        edited_utc=ts_to_datetime(str(event.get("event_ts") or event.get("ts") or "")),
    )


def deletion_from(body: Mapping[str, Any], event: Mapping[str, Any]) -> MessageDeletion:
    deleted = _text(event.get("deleted_ts"), "deleted_ts")
    previous: Mapping[str, Any] = (
        event["previous_message"] if isinstance(event.get("previous_message"), Mapping) else {}
    )
    thread_ts = previous.get("thread_ts") if isinstance(previous.get("thread_ts"), str) else None
    return MessageDeletion(
        thread=thread_of(
            team=team_of(body, event), channel=_text(event.get("channel"), "channel"), ts=deleted, thread_ts=thread_ts
        ),
        message_id=deleted,
        deleted_utc=ts_to_datetime(str(event.get("event_ts") or event.get("ts") or "")),
    )


def _clicker(body: Mapping[str, Any]) -> Author | None:
    user: Mapping[str, Any] = body["user"] if isinstance(body.get("user"), Mapping) else {}
    if not user.get("id"):
        return None
    return Author(id=str(user["id"]), display_name=str(user.get("name") or user.get("username") or user["id"]))


def _button_value(action: Mapping[str, Any]) -> str:
    return str(action.get("value") or action.get("action_id") or "")


def click_from(body: Mapping[str, Any], action: Mapping[str, Any]) -> CardClick | None:
    """A card button press, or None for a button that is not ours (or no longer parses)."""
    parsed = parse_card_button_id(_button_value(action))
    user = _clicker(body)
    if parsed is None or user is None:
        return None
    return CardClick(card_id=parsed[0], action=parsed[1], user=user, raw=body, thread=click_thread(body))


def approval_click_from(body: Mapping[str, Any], action: Mapping[str, Any]) -> ApprovalClick | None:
    """An Allow / Deny press on an approval card, or None for a button that is not one (or no longer parses)."""
    parsed = parse_approval_button_id(_button_value(action))
    user = _clicker(body)
    if parsed is None or user is None:
        return None
    card_ts = _mapping(body.get("container")).get("message_ts") or _mapping(body.get("message")).get("ts")
    return ApprovalClick(
        approval_id=parsed[0],
        action=parsed[1],
        user=user,
        thread=click_thread(body),
        raw=body,
        card_message_id=card_ts if isinstance(card_ts, str) and card_ts else None,
    )


def arguments_click_from(body: Mapping[str, Any], action: Mapping[str, Any]) -> ArgumentsClick | None:
    """A Show all press on an approval card, or None for a button that is not one."""
    approval_id = parse_arguments_button_id(_button_value(action))
    user = _clicker(body)
    if approval_id is None or user is None:
        return None
    return ArgumentsClick(approval_id=approval_id, user=user, thread=click_thread(body), raw=body)


def click_thread(body: Mapping[str, Any]) -> ThreadKey | None:
    """The thread of the message whose button was pressed: its channel and ``thread_ts``, if the body says.

    ``team.id`` of a block_actions body is the workspace the app posted from, even when someone from a
    connected org clicks in a shared channel (whose own team is ``user.team_id``).
    """
    channel = _mapping(body.get("channel")).get("id") or _mapping(body.get("container")).get("channel_id")
    thread_ts = _mapping(body.get("message")).get("thread_ts") or _mapping(body.get("container")).get("thread_ts")
    if not isinstance(channel, str) or not isinstance(thread_ts, str) or not channel or not thread_ts:
        return None
    team = _mapping(body.get("team")).get("id") or _mapping(body.get("user")).get("team_id") or ""
    return thread_of(team=str(team), channel=channel, ts=thread_ts, thread_ts=thread_ts)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
