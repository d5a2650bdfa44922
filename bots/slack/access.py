"""Who may talk to the bot on Slack: the allowlists as one small bolt middleware step.

Each check answers one question about where a request came from (team, channel, user); an empty allowlist
allows everyone. The adapter installs them as a global bolt middleware, so an event or a button click from
outside the lists never reaches a listener, let alone the router. ``origin_of`` reads the origin from the two
kinds of body the bot handles: Events API callbacks, and ``block_actions`` / ``message_action`` (a click, a
message shortcut).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_bolt.response import BoltResponse

from bots.config import Settings
from bots.slack import translate

if TYPE_CHECKING:
    from bots.slack.outbox import SlackOutbox

log = logging.getLogger(__name__)

DENIED = "Sorry, I'm not available to you here. Ask your workspace admin if you think that's wrong."


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request came from. ``kind`` is "dm", "channel" or "click"."""

    team: str
    channel: str
    user: str
    kind: str = "channel"


Check = Callable[[Origin], bool]


def _allowed(allowlist: frozenset[str], value: str) -> bool:
    return not allowlist or value in allowlist


def checks_from(settings: Settings) -> list[Check]:
    return [
        lambda o: _allowed(settings.slack_allowed_teams, o.team),
        lambda o: _allowed(settings.slack_allowed_channels, o.channel),
        lambda o: _allowed(settings.slack_allowed_users, o.user),
    ]


def is_allowed(origin: Origin, checks: list[Check]) -> bool:
    return all(check(origin) for check in checks)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def origin_of(body: Mapping[str, Any]) -> Origin | None:
    """The origin of a message event or a button click; None for anything nobody is saying.

    Edits and deletions pass (None): they only ever change messages the log already holds, and the log only
    holds messages that passed the lists. The team is always the acting person's own (``event.team``, a
    clicker's ``user.team_id``), so in a Slack Connect channel SLACK_ALLOWED_TEAMS keeps other orgs out.
    """
    if body.get("type") == "event_callback":
        event = _mapping(body.get("event"))
        if event.get("subtype") in ("message_changed", "message_deleted"):
            return None
        team = event.get("team") or body.get("team_id") or ""
        user = event.get("user") or ""
        kind = "dm" if event.get("channel_type") == "im" else "channel"
        return Origin(team=str(team), channel=str(event.get("channel") or ""), user=str(user), kind=kind)
    if body.get("type") in ("block_actions", "message_action"):  # a button click, or a message shortcut
        # The clicker's own team: in a shared channel ``team.id`` is the workspace the app posted from.
        team = _mapping(body.get("user")).get("team_id") or _mapping(body.get("team")).get("id") or ""
        channel = _mapping(body.get("channel")).get("id") or _mapping(body.get("container")).get("channel_id") or ""
        user = _mapping(body.get("user")).get("id") or ""
        return Origin(team=str(team), channel=str(channel), user=str(user), kind="click")
    return None


class AllowlistGate:
    """The global bolt middleware: requests from outside the allowlists are acknowledged and dropped; a person
    writing a DM or clicking a button is told so, after the ack."""

    def __init__(
        self,
        *,
        checks: list[Check],
        outbox: SlackOutbox,
        after_ack: Callable[..., None],
        bot_user_id: Callable[[], str | None],
    ) -> None:
        self._checks = checks
        self._outbox = outbox
        self._after_ack: Callable[..., None] = after_ack
        self._bot_user_id = bot_user_id

    async def middleware(self, body: dict[str, Any], next_: Callable[[], Awaitable[None]]) -> BoltResponse | None:
        origin = origin_of(body)
        if origin is None or is_allowed(origin, self._checks):
            await next_()
            return None
        log.info("ignoring a %s from user %s in channel %s (allowlist)", origin.kind, origin.user, origin.channel)
        event = body.get("event") or {}
        if origin.kind == "dm" and translate.is_users_message(event, bot_user_id=self._bot_user_id()):
            thread_ts = event.get("thread_ts")
            where = translate.thread_of(
                team=origin.team,
                channel=origin.channel,
                ts=str(event.get("ts")),
                thread_ts=thread_ts if isinstance(thread_ts, str) else None,
            )
            self._tell(self._outbox.post_notice(thread=where, text=DENIED), "a DM sender")
        elif origin.kind == "click" and origin.channel and origin.user:
            message = body.get("message") or {}
            told = self._outbox.tell_privately(
                channel=origin.channel, thread_ts=message.get("thread_ts"), user=origin.user, text=DENIED
            )
            self._tell(told, "a clicker")
        return BoltResponse(status=200, body="")

    def _tell(self, work: Coroutine[Any, Any, None], whom: str) -> None:
        self._after_ack(work, what=f"telling {whom} they are not on the allowlist")
