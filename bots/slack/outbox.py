"""How threadkeeper looks on Slack: natively streamed replies (or chat.update), status, feedback, Block Kit cards.

Where the workspace allows it a reply streams with Slack's own ``chat.startStream`` / ``appendStream`` /
``stopStream`` (``stream.py``; markdown, appended at most about once a second, a new streamed message past
~11,500 characters), opened while the model is asked, never before. A workspace that refuses those methods
gets what follows, and is asked again after an hour: a reply starts as a placeholder posted at once, then is
edited as text arrives, at most about once a second (Slack allows roughly one write a second per channel).
Text past ~3,500 characters continues in further messages, split on paragraph and line boundaries and never
inside a code block. A completed answer carries the feedback buttons (``feedback.py``) either way.

While the model thinks or a tool runs, the thread shows Slack's own assistant status where Slack allows it
(assistant and agent threads, ``status.py``), cleared when the answer starts. Elsewhere a tool's progress is
a task in the native stream's timeline, or an italic line at the end of the posted message, drawn by the same
throttle as the text (``bots/replies/streaming.py``). The "Where were we?" card and the tool-call approval card are
Block Kit messages whose buttons carry their ids.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

import aiohttp
from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bots.replies.native_stream import stream_natively
from bots.replies.render import (
    ALLOW_LABEL,
    APPROVAL_TITLE,
    ARGUMENTS_CUT_NOTE,
    CARD_BODY,
    CARD_TITLE,
    CATCH_UP_LABEL,
    DENY_LABEL,
    FRESH_LABEL,
    SHOW_ALL_LABEL,
    approval_intro,
    approval_status_line,
    approval_text,
    card_status_line,
    card_text,
    split_message,
)
from bots.replies.streaming import Snapshot, StreamingStatuses
from bots.router.bounded import BoundedCache
from bots.seam.messages import ApprovalAction, CardAction, ThreadKey
from bots.seam.ports import ApprovalCard, CatchUpCard, SessionStatus
from bots.slack.arguments import summary_section
from bots.slack.assistant import AgentThreads
from bots.slack.errors import reason_of as _reason
from bots.slack.feedback import feedback_blocks, text_blocks
from bots.slack.mrkdwn import escape, to_mrkdwn
from bots.slack.status import AgentSessions, AssistantStatus
from bots.slack.stream import Asker, NativeStreaming, SlackStream
from bots.slack.translate import is_dm

log = logging.getLogger(__name__)

CHUNK_LIMIT = 3500
SECTION_LIMIT = 3000
EDIT_INTERVAL_S = 1.0
PLACEHOLDER = "_Thinking…_"
THINKING = "is thinking…"  # the assistant status while the model has not answered yet
ASKERS_MAX = 5000
ASKER_TTL_S = 86_400.0
FIND_CARD_PAGE = 100  # replies per conversations.replies page when a card is looked for
FIND_CARD_PAGES = 3


class SlackOutbox:
    """ThreadOutbox for Slack, on the app's AsyncWebClient."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        edit_interval_s: float = EDIT_INTERVAL_S,
        loading_messages: tuple[str, ...] = (),
        prompts: Sequence[tuple[str, str]] = (),
    ) -> None:
        self._client = client
        self._edit_interval_s = edit_interval_s
        self._loading_messages = list(loading_messages)
        self._statuses = StreamingStatuses()
        self._status = AssistantStatus(client)
        self.native = NativeStreaming()
        self.sessions = AgentSessions(client)
        self.threads = AgentThreads(client, prompts=prompts)
        self._askers: BoundedCache[tuple[str, str], Asker] = BoundedCache(max_entries=ASKERS_MAX, ttl_s=ASKER_TTL_S)

    def remember_asker(self, thread: ThreadKey, user: str, *, team: str | None = None) -> None:
        """The latest person to speak in ``thread``: outside DMs a native stream names them as its recipient.

        ``team`` is their own (in a Slack Connect channel, not necessarily the thread's workspace)."""
        self._askers.put((thread.channel, thread.thread), Asker(user, team or thread.workspace))

    async def stream_reply(self, *, thread: ThreadKey, deltas: AsyncIterator[str]) -> list[str]:
        with self._statuses.streaming(thread) as status:
            # Both go out while the model is asked: neither waits for the other.
            thinking = asyncio.create_task(self._status.set(thread, THINKING, loading=self._loading_messages))
            messages = SlackMessages(self._client, thread)
            stream = SlackStream(
                self._client,
                thread,
                asker=self._askers.get((thread.channel, thread.thread)),
                streaming=self.native,
                status_shown=is_dm(thread) and not self._status.refused_in(thread.workspace, dm=True),
            )
            try:
                ids = await stream_natively(
                    stream,
                    messages,
                    self._cleared_at_first_text(thread, thinking, deltas),
                    interval_s=self._edit_interval_s,
                    status=status,
                )
                if not stream.ids and not messages.buttons_shown:  # the final text came before the stream ended
                    await messages.add_feedback(ids)
                return ids
            finally:
                await asyncio.gather(thinking, return_exceptions=True)
                await self._status.clear(thread)

    async def _cleared_at_first_text(
        self, thread: ThreadKey, thinking: asyncio.Task[bool], deltas: AsyncIterator[str]
    ) -> AsyncIterator[str]:
        """The model's deltas; the "thinking" status goes when the first text comes (Slack would keep it)."""
        cleared = False
        async for delta in deltas:
            if delta and not cleared:
                cleared = True
                await asyncio.gather(thinking, return_exceptions=True)
                await self._status.clear(thread)
            yield delta

    async def set_session_status(self, *, thread: ThreadKey, status: SessionStatus, title: str | None = None) -> None:
        """The thread's agent session (``status.py``); never raises, never holds a reply up for long."""
        try:
            await self.sessions.set_status(thread, status, title=title)
        except Exception:
            log.exception("could not set the agent session status of %s", thread)

    async def rename_thread(self, *, thread: ThreadKey, title: str) -> None:
        """The agent session's title, and in a DM the assistant thread's title the bot set from the first message."""
        try:
            await self.sessions.rename(thread, title)
            if is_dm(thread):
                await self.threads.rename(thread, title)
        except Exception:
            log.exception("could not rename %s", thread)

    async def show_status(self, *, thread: ThreadKey, text: str | None) -> None:
        """Slack's own assistant status where the workspace allows it, else a line in the streaming message."""
        try:
            if not self._statuses.is_streaming(thread):
                return
            # A clear also reaches the line: an earlier status may have fallen back to it (a network error).
            if not await self._status.set(thread, text) or text is None:
                self._statuses.show(thread, text)
        except Exception:
            log.exception("could not show a status in %s", thread)

    async def post_notice(self, *, thread: ThreadKey, text: str) -> None:
        """A notice is plain text: it may quote a file name or a person, so it can never ping or link."""
        await self._client.chat_postMessage(channel=thread.channel, thread_ts=thread.thread, text=escape(text))

    async def post_card(self, *, card: CatchUpCard) -> str:
        response = await self._client.chat_postMessage(
            channel=card.thread.channel, thread_ts=card.thread.thread, text=card_text(card), blocks=card_blocks(card)
        )
        return str(response["ts"])

    async def update_card(self, *, card: CatchUpCard, message_id: str) -> None:
        await self._client.chat_update(
            channel=card.thread.channel, ts=message_id, text=card_text(card), blocks=card_blocks(card)
        )

    async def find_card(self, *, card: CatchUpCard) -> str | None:
        """The ts of the bot's own message in the thread whose buttons belong to ``card`` (recovery only).

        ``conversations.replies`` reads a thread oldest first, so the bound is on pages: at most
        ``FIND_CARD_PAGES`` of ``FIND_CARD_PAGE`` replies. It runs only when an earlier run died between posting
        a card and storing its ts (``bots/router/cards.py``); replies never read the history, so P6's "0 history reads"
        (docs/PERFORMANCE.md) is unaffected.
        """
        me = await self._client.auth_test()
        mine = {str(me[k]) for k in ("user_id", "bot_id") if me.get(k)}
        block_id = card_block_id(card.card_id)
        cursor: str | None = None
        for _ in range(FIND_CARD_PAGES):
            kwargs: dict[str, Any] = {"cursor": cursor} if cursor else {}
            response = await self._client.conversations_replies(
                channel=card.thread.channel, ts=card.thread.thread, limit=FIND_CARD_PAGE, **kwargs
            )
            for message in response.get("messages") or []:
                ours = bool(mine & {str(message.get("user")), str(message.get("bot_id"))})
                if ours and any(b.get("block_id") == block_id for b in message.get("blocks") or []):
                    return str(message["ts"])
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                break
        return None

    async def post_approval(self, *, card: ApprovalCard) -> str:
        response = await self._client.chat_postMessage(
            channel=card.thread.channel,
            thread_ts=card.thread.thread,
            text=to_mrkdwn(approval_text(card)),
            blocks=approval_blocks(card),
        )
        return str(response["ts"])

    async def update_approval(self, *, card: ApprovalCard, message_id: str) -> None:
        text = to_mrkdwn(approval_text(card))
        await self._client.chat_update(
            channel=card.thread.channel, ts=message_id, text=text, blocks=approval_blocks(card)
        )

    async def tell_privately(
        self, *, channel: str, thread_ts: str | None, user: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": text}
        if blocks:
            kwargs["blocks"] = blocks
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        await self._client.chat_postEphemeral(**kwargs)


class SlackMessages:
    """The platform calls the reply streamer (``bots/replies/reply_stream.py``) needs, in one Slack thread."""

    placeholder: str | None = PLACEHOLDER

    def __init__(self, client: AsyncWebClient, thread: ThreadKey) -> None:
        self._client = client
        self._thread = thread
        self._texts: dict[str, str] = {}  # ts -> the text it shows
        self._first: str | None = None  # the reply's first message: the id its feedback names
        self.buttons_shown = False  # the completed answer's last write carried the feedback buttons

    def chunks(self, snapshot: Snapshot) -> list[str]:
        return message_chunks(snapshot)

    @staticmethod
    def _final_blocks(text: str, *, answer_id: str) -> list[dict[str, Any]]:
        """The last message of a completed answer in Block Kit: its text, then 👍 / 👎 naming the answer."""
        return text_blocks(text, section_limit=SECTION_LIMIT) + feedback_blocks(answer_id=answer_id)

    async def add_feedback(self, ids: list[str]) -> None:
        """The feedback buttons under a completed answer's last message, naming the answer by its first."""
        if not ids or ids[-1] not in self._texts:
            return
        text = self._texts[ids[-1]]
        blocks = self._final_blocks(text, answer_id=ids[0])
        try:
            await self._client.chat_update(channel=self._thread.channel, ts=ids[-1], text=text, blocks=blocks)
        except (SlackClientError, aiohttp.ClientError) as exc:
            log.info("could not add the feedback buttons in %s (%s)", self._thread, _reason(exc))

    def waiting(self) -> AbstractAsyncContextManager[None]:
        return nullcontext()  # the placeholder says it

    async def post(self, text: str, *, complete: bool = False) -> str:
        """A new message of the reply. Posted messages never carry blocks (those are the cards'): a completed
        answer whose last message is new gets its buttons by one more update (:meth:`add_feedback`)."""
        response = await self._client.chat_postMessage(
            channel=self._thread.channel, thread_ts=self._thread.thread, text=text
        )
        ts = str(response["ts"])
        self._texts[ts] = text
        if self._first is None:
            self._first = ts
        return ts

    async def edit(self, message_id: str, text: str, *, complete: bool = False) -> str:
        """Edit a reply in progress; if Slack refuses (deleted meanwhile, a network error), go on in a new message.

        Returns the ts the rest of the reply edits. The old message, if it still exists, is removed (best
        effort): the new one holds all its text, and a stale "Thinking…" must not stay behind.
        """
        kwargs: dict[str, Any] = {"channel": self._thread.channel, "ts": message_id, "text": text}
        if complete:
            kwargs["blocks"] = self._final_blocks(text, answer_id=self._first or message_id)
        try:
            await self._client.chat_update(**kwargs)
            self._texts[message_id] = text
            self.buttons_shown = self.buttons_shown or complete
        except (SlackClientError, aiohttp.ClientError) as exc:
            reason = _reason(exc)
            log.info("could not update reply %s in %s (%s); posting the rest anew", message_id, self._thread, reason)
            if message_id == self._first:
                self._first = None  # the answer now starts at the new message
            ts = await self.post(text, complete=complete)
            if reason != "message_not_found":
                await self.delete(message_id)
            return ts
        return message_id

    async def delete(self, message_id: str) -> None:
        try:
            await self._client.chat_delete(channel=self._thread.channel, ts=message_id)
        except (SlackClientError, aiohttp.ClientError) as exc:
            log.info("could not remove the reply message %s in %s (%s)", message_id, self._thread, _reason(exc))


def message_chunks(snapshot: Snapshot) -> list[str]:
    """The messages a snapshot needs: the text in mrkdwn, split, with the status in italics at the end.

    The status goes only where it fits (never into a message of its own that would stay behind); with no text
    yet it stands in for the placeholder, and the placeholder comes back if the reply ends empty.
    """
    chunks = split_message(to_mrkdwn(snapshot.text), limit=CHUNK_LIMIT) if snapshot.text.strip() else []
    if snapshot.status:
        line = f"_{escape(snapshot.status)}_"
        if not chunks:
            chunks = [line]
        elif len(chunks[-1]) + 2 + len(line) <= CHUNK_LIMIT:
            chunks[-1] = f"{chunks[-1].rstrip()}\n\n{line}"
    return chunks or [PLACEHOLDER]


def card_block_id(card_id: int) -> str:
    """The block_id of a card's buttons: what finds a card message in the thread again."""
    return f"tk-card-{card_id}"


def card_blocks(card: CatchUpCard) -> list[dict[str, Any]]:
    """The card in Block Kit: a section, then the two buttons while it waits, or the outcome once chosen."""
    body = CARD_BODY if not card.note else f"{CARD_BODY}\n{card.note}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{CARD_TITLE}*\n{body}"}},
    ]
    if card.buttons_live:
        blocks.append(
            {
                "type": "actions",
                "block_id": card_block_id(card.card_id),
                "elements": [
                    _button(CATCH_UP_LABEL, card.button_id(CardAction.CATCH_UP), primary=True),
                    _button(FRESH_LABEL, card.button_id(CardAction.FRESH), primary=False),
                ],
            }
        )
    else:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": card_status_line(card)}]})
    return blocks


def approval_blocks(card: ApprovalCard) -> list[dict[str, Any]]:
    """The approval in Block Kit: what runs, one line per argument as code, then Allow / Deny or the outcome.

    The arguments are model output: the summary (``bots/slack/arguments.py``) is escaped for mrkdwn (no forged
    mentions or links), fenced as code and fitted to a section. When it cuts something, a Show all button
    (carrying only the approval id) answers the clicker with the full arguments.
    """
    intro = f"*{APPROVAL_TITLE}*\n{escape(approval_intro(card))}"
    arguments, summary = summary_section(card.arguments_json)
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": intro}}, arguments]
    elements: list[dict[str, Any]] = []
    if card.buttons_live:
        elements += [
            _button(ALLOW_LABEL, card.button_id(ApprovalAction.ALLOW), style="primary"),
            _button(DENY_LABEL, card.button_id(ApprovalAction.DENY), style="danger"),
        ]
    if not summary.complete:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": ARGUMENTS_CUT_NOTE}]})
        elements.append(_button(SHOW_ALL_LABEL, card.show_all_id))
    if elements:
        blocks.append({"type": "actions", "block_id": f"tk-approval-{card.approval_id}", "elements": elements})
    if not card.buttons_live:
        status = escape(approval_status_line(card) or "")
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": status}]})
    return blocks


def _button(label: str, value: str, *, primary: bool = False, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": value,
        "value": value,
    }
    if primary or style:
        button["style"] = style or "primary"
    return button
