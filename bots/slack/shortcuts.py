"""The in-thread commands on Slack: message shortcuts, ``@threadkeeper model NAME``, and the forget button.

Slack's slash commands do not say which thread they were typed in, so the commands use what does: a message
shortcut on any message of the thread ("Retry", "Export thread", "Forget thread", "What do you remember?", "Reply
mode", declared in slack-manifest.yml) and a mention in the thread whose whole text is a command (``@threadkeeper
model NAME``, ``@threadkeeper reply mention``; "@threadkeeper memory leaks?" stays a question). Shortcuts and
button clicks are acknowledged at once and run after the ack, like card clicks; a command mention is handed off
the same way, so its event is acknowledged as fast as any other.

Replies concern the asker alone: notes and the forget button go out with chat.postEphemeral in the thread, the
export as a Markdown file in the asker's DM with the bot (files upload v2, the only private place a file can
go), with an ephemeral note in the thread saying so.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bots.router.bounded import BoundedCache
from bots.router.commands.flow import (
    COMMAND_FAILED,
    FORGET_LABEL,
    Command,
    CommandName,
    CommandResult,
    ForgetClick,
    parse_command,
)
from bots.router.threads import ThreadRouter
from bots.seam.messages import Author, ThreadKey
from bots.seam.ports import FORGET_BUTTON_PREFIX, parse_forget_button_id
from bots.slack import translate
from bots.slack.outbox import SECTION_LIMIT, _button

log = logging.getLogger(__name__)

# callback_id -> (command, the name slack-manifest.yml gives the shortcut)
SHORTCUTS: dict[str, tuple[CommandName, str]] = {
    "tk_retry": (CommandName.RETRY, "Retry"),
    "tk_export": (CommandName.EXPORT, "Export thread"),
    "tk_forget": (CommandName.FORGET, "Forget thread"),
    "tk_memory": (CommandName.MEMORY, "What do you remember?"),
    "tk_reply": (CommandName.REPLY, "Reply mode"),  # shows the mode; a mention changes it (reply all|mention|auto)
}
FORGET_BUTTON = re.compile(rf"^{FORGET_BUTTON_PREFIX}:")
EXPORT_SENT = "I sent you this thread's log as a Markdown file in our DM."
SEEN_EVENTS_MAX = 10_000

DisplayName = Callable[[str], Awaitable[str]]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


class SlackCommands:
    """Registers the shortcut and button listeners; runs commands through the router after the ack."""

    def __init__(
        self,
        *,
        client: AsyncWebClient,
        router: ThreadRouter,
        after_ack: Callable[[Coroutine[Any, Any, None]], None],
        display_name: DisplayName,
        bot_user_id: Callable[[], str | None],
    ) -> None:
        self._client = client
        self._router = router
        self._after_ack = after_ack
        self._display_name = display_name
        self._bot_user_id = bot_user_id
        self._seen: BoundedCache[str, None] = BoundedCache(max_entries=SEEN_EVENTS_MAX)

    def register(self, app: AsyncApp) -> None:
        """Add the listeners; call before any catch-all action listener."""
        for callback_id in SHORTCUTS:
            app.message_shortcut(callback_id)(self._on_shortcut)
        app.action(FORGET_BUTTON)(self._on_forget_button)

    async def _on_shortcut(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        name = SHORTCUTS[str(body.get("callback_id"))][0]
        message = _mapping(body.get("message"))
        channel, user = _mapping(body.get("channel")).get("id"), _mapping(body.get("user")).get("id")
        ts = message.get("ts")
        if not isinstance(channel, str) or not isinstance(user, str) or not isinstance(ts, str):
            log.warning("ignoring a malformed Slack message shortcut %s", body.get("callback_id"))
            return
        thread_ts = message.get("thread_ts") if isinstance(message.get("thread_ts"), str) else None
        key = translate.thread_of(team=translate.team_of(body, {}), channel=channel, ts=ts, thread_ts=thread_ts)
        self._after_ack(self._run(key, name, "", user=user, raw=body))

    def from_mention(self, body: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
        """Run the mention as a command if its whole text is one (True); else it is a message for the router."""
        text = translate.strip_mentions(str(event.get("text") or ""), bot_user_id=self._bot_user_id())
        parsed = parse_command(text, slash=False)
        channel, ts, user = event.get("channel"), event.get("ts"), event.get("user")
        if parsed is None or not isinstance(channel, str) or not isinstance(ts, str) or not isinstance(user, str):
            return False
        event_id = body.get("event_id")
        if isinstance(event_id, str):
            if event_id in self._seen:
                return True  # Slack's retry of a command already run
            self._seen.put(event_id, None)
        thread_ts = event.get("thread_ts") if isinstance(event.get("thread_ts"), str) else None
        key = translate.thread_of(team=translate.team_of(body, event), channel=channel, ts=ts, thread_ts=thread_ts)
        self._after_ack(self._run(key, parsed[0], parsed[1], user=user, raw=body))
        return True

    async def _run(self, key: ThreadKey, name: CommandName, argument: str, *, user: str, raw: object) -> None:
        """Run the command and answer the asker; a failure on the way gets them a short note, the log the why."""
        try:
            author = Author(user, await self._display_name(user))
            result = await self._router.handle_command(Command(key, name, author, argument=argument, raw=raw))
            await self._answer(result, key=key, user=user)
        except Exception:
            log.exception("the %s command failed in %s", name, key)
            await self._answer(CommandResult(private_note=COMMAND_FAILED), key=key, user=user)

    async def _answer(self, result: CommandResult, *, key: ThreadKey, user: str) -> None:
        note = result.private_note
        if result.file is not None:
            dm = await self._client.conversations_open(users=user)
            channel = str(_mapping(dm.get("channel")).get("id"))
            await self._client.files_upload_v2(
                channel=channel, filename=result.file.filename, title=result.file.filename, content=result.file.text
            )
            note = EXPORT_SENT
        if note is None and result.confirm_button is None:
            return
        text = (note or "")[:SECTION_LIMIT]
        kwargs: dict[str, Any] = {"channel": key.channel, "user": user, "text": text, "thread_ts": key.thread}
        if result.confirm_button is not None:
            kwargs["blocks"] = [
                {"type": "section", "text": {"type": "mrkdwn", "text": text}},
                {"type": "actions", "elements": [_button(FORGET_LABEL, result.confirm_button, style="danger")]},
            ]
        await self._client.chat_postEphemeral(**kwargs)

    async def _on_forget_button(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        thread_id = parse_forget_button_id(str(action.get("value") or action.get("action_id") or ""))
        user = _mapping(body.get("user")).get("id")
        if thread_id is None or not isinstance(user, str):
            log.info("ignoring an unknown button %r", action.get("action_id"))
            return
        self._after_ack(self._forget(thread_id, user, body))

    async def _forget(self, thread_id: int, user: str, body: Mapping[str, Any]) -> None:
        author = Author(user, await self._display_name(user))
        where = translate.click_thread(body)
        click = ForgetClick(thread_id, author, thread=where, raw=body)
        result = await self._router.handle_forget_click(click)
        if result.private_note and where is not None:
            await self._answer(dataclasses.replace(result, confirm_button=None), key=where, user=user)
        elif result.private_note:
            channel = _mapping(body.get("channel")).get("id") or _mapping(body.get("container")).get("channel_id")
            if isinstance(channel, str):
                await self._client.chat_postEphemeral(channel=channel, user=user, text=result.private_note)
