"""The terminal adapter: try the bot without a Discord or Slack account.

Each ``--thread NAME`` is one thread. Lines typed (or piped) become messages; the reply streams to stdout.
When the router shows a "Where were we?" card, the next line ``1`` (or ``c``) means Catch me up and ``2``
(or ``f``) Start fresh; any other line is just another message that waits with the first. Quit with Ctrl-D.
It drives the very router the Discord and Slack adapters use.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
import uuid
from collections.abc import AsyncIterator
from typing import TextIO

from bots.messages import Author, CardAction, CardClick, IncomingMessage, ThreadKey
from bots.ports import CatchUpCard
from bots.render import CATCH_UP_LABEL, FRESH_LABEL, card_text
from bots.threads import ThreadRouter

PLATFORM = "console"
CHOICES = {"1": CardAction.CATCH_UP, "c": CardAction.CATCH_UP, "2": CardAction.FRESH, "f": CardAction.FRESH}


def console_thread(name: str) -> ThreadKey:
    return ThreadKey(platform=PLATFORM, workspace="local", channel="terminal", thread=name)


class ConsoleOutbox:
    """Prints what the router says; remembers the card awaiting a choice."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self.pending_card: CatchUpCard | None = None

    def _print(self, text: str = "", *, end: str = "\n") -> None:
        self._out.write(text + end)
        self._out.flush()

    async def stream_reply(self, *, thread: ThreadKey, deltas: AsyncIterator[str]) -> list[str]:
        self._print("bot> ", end="")
        try:
            async for delta in deltas:
                self._print(delta, end="")
        finally:
            self._print()
        return []

    async def post_notice(self, *, thread: ThreadKey, text: str) -> None:
        self._print(f"bot> {text}")

    async def post_card(self, *, card: CatchUpCard) -> str:
        self.pending_card = card
        self._print(f"┌ {card_text(card).replace(chr(10), chr(10) + '│ ')}")
        self._print(f"└ [1] {CATCH_UP_LABEL}   [2] {FRESH_LABEL}")
        return f"card-{card.card_id}"

    async def update_card(self, *, card: CatchUpCard, message_id: str) -> None:
        self.pending_card = card if card.buttons_live else None
        if card.buttons_live:
            await self.post_card(card=card)
        else:
            self._print(f"· {card_text(card).splitlines()[-1]}")


async def chat(router: ThreadRouter, *, thread_name: str, source: TextIO = sys.stdin, out: TextIO = sys.stdout) -> None:
    """Read lines until EOF, each a message (or a card choice) in ``thread_name``."""
    outbox = ConsoleOutbox(out)
    router.register_outbox(PLATFORM, outbox)
    await router.resume(PLATFORM)
    await router.idle()
    key = console_thread(thread_name)
    user = getpass.getuser()
    author = Author(id=f"local:{user}", display_name=user)
    interactive = source.isatty()
    loop = asyncio.get_running_loop()
    while True:
        if interactive:
            out.write("you> ")
            out.flush()
        line = await loop.run_in_executor(None, source.readline)
        if not line:
            break
        text = line.rstrip("\n")
        choice = CHOICES.get(text.strip().lower()) if outbox.pending_card else None
        if outbox.pending_card and choice:
            card_id = outbox.pending_card.card_id
            outbox.pending_card = None
            result = await router.handle_click(CardClick(card_id=card_id, action=choice, user=author, thread=key))
            if result.private_note:
                out.write(f"(only you can see this) {result.private_note}\n")
        elif text.strip():
            await router.handle_message(
                IncomingMessage(
                    thread=key, message_id=str(uuid.uuid4()), author=author, text=text, thread_title=thread_name
                )
            )
        await router.idle()
