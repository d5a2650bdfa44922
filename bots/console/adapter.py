"""The terminal adapter: try the bot without a Discord or Slack account.

Each ``--thread NAME`` is one thread. Lines typed (or piped) become messages; the reply streams to stdout.
When the router shows a "Where were we?" card, the next line ``1`` (or ``c``) means Catch me up and ``2``
(or ``f``) Start fresh; when it asks to allow a tool call, ``y`` (or ``allow``) allows it and ``n`` (or
``deny``) denies it. Any other line is just another message that waits with the first. While a tool runs a
dim ``(running NAME…)`` line says so. ``/attach PATH…`` attaches files to the next message. ``/retry``,
``/model [NAME]``, ``/reply [all|mention|auto]``, ``/memory``, ``/export`` (a Markdown file in the export folder,
the current one by default) and ``/forget`` (then ``y`` to confirm) are the in-thread commands of
``bots/router/commands/``. Quit with Ctrl-D.
Ctrl-C while an answer is being written stops that answer (the router's stop flow, ``bots/router/stopping.py``)
and returns to the prompt; Ctrl-C at the prompt quits, as before. A line starting with ``@threadkeeper`` mentions
the bot (what the ``mention`` reply mode answers); the console has no history to read on joining.
It drives the very router the Discord and Slack adapters use; an approval is asked while a reply is under way,
so input is read again as soon as one is.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import signal
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TextIO

from bots.console.attachments import files_to_attach, is_attach_command
from bots.operator.log_escape import terminal_safe
from bots.replies.render import ALLOW_LABEL, CATCH_UP_LABEL, DENY_LABEL, FRESH_LABEL, approval_status_line, card_text
from bots.router.commands.flow import Command, CommandResult, ForgetClick, parse_command
from bots.router.threads import ThreadRouter
from bots.seam.messages import (
    ApprovalAction,
    ApprovalClick,
    Attachment,
    Author,
    CardAction,
    CardClick,
    IncomingMessage,
    StopRequest,
    ThreadKey,
)
from bots.seam.ports import ApprovalCard, CatchUpCard, SessionStatus, parse_forget_button_id
from bots.tools.approval_arguments import full_arguments, printable

PLATFORM = "console"
CONSOLE_MENTION = "@threadkeeper"  # the bot's name, as the router gives it
CHOICES = {"1": CardAction.CATCH_UP, "c": CardAction.CATCH_UP, "2": CardAction.FRESH, "f": CardAction.FRESH}
APPROVAL_CHOICES = {
    "y": ApprovalAction.ALLOW,
    "allow": ApprovalAction.ALLOW,
    "n": ApprovalAction.DENY,
    "deny": ApprovalAction.DENY,
}
FORGET_YES = {"y", "yes"}
DIM, PLAIN = "\x1b[2m", "\x1b[0m"


def console_thread(name: str) -> ThreadKey:
    return ThreadKey(platform=PLATFORM, workspace="local", channel="terminal", thread=name)


class ConsoleOutbox:
    """Prints what the router says; remembers the card and the approval awaiting a choice."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self.pending_card: CatchUpCard | None = None
        self.pending_approval: ApprovalCard | None = None
        self.approval_asked = asyncio.Event()  # set when an approval waits: read input even mid-reply
        self._mid_reply = False  # the reply's line is open (a status goes on a line of its own)

    def _print(self, text: str = "", *, end: str = "\n") -> None:
        """Write text from the model or the log; its control characters are shown, never obeyed."""
        self._out.write(terminal_safe(text) + end)
        self._out.flush()

    async def stream_reply(self, *, thread: ThreadKey, deltas: AsyncIterator[str]) -> list[str]:
        self._print("bot> ", end="")
        self._mid_reply = True
        try:
            async for delta in deltas:
                if not self._mid_reply:
                    self._print("bot> ", end="")
                    self._mid_reply = True
                self._print(delta, end="")
        finally:
            self._print()
            self._mid_reply = False
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

    async def find_card(self, *, card: CatchUpCard) -> str | None:
        """The terminal holds only the card it shows now."""
        shown = self.pending_card
        return f"card-{card.card_id}" if shown is not None and shown.card_id == card.card_id else None

    async def post_approval(self, *, card: ApprovalCard) -> str:
        self._end_reply_line()
        self.pending_approval = card
        self.approval_asked.set()
        self._print(f"┌ Allow this tool call? {card.tool}")
        for line in printable(full_arguments(card.arguments_json)).split("\n"):  # a terminal has room for all
            self._print(f"│ {line}")
        self._print(f"└ [y] {ALLOW_LABEL}   [n] {DENY_LABEL}")
        return f"approval-{card.approval_id}"

    async def update_approval(self, *, card: ApprovalCard, message_id: str) -> None:
        if self.pending_approval is not None and self.pending_approval.approval_id == card.approval_id:
            self.pending_approval = None if not card.buttons_live else card
        status = approval_status_line(card)
        if status:
            self._end_reply_line()
            self._print(f"· {status}")

    async def show_status(self, *, thread: ThreadKey, text: str | None) -> None:
        if not text:
            return
        self._end_reply_line()
        line = terminal_safe(f"({text[:1].lower()}{text[1:]})")
        self._out.write(f"{DIM}{line}{PLAIN}\n" if self._out.isatty() else f"{line}\n")
        self._out.flush()

    async def set_session_status(self, *, thread: ThreadKey, status: SessionStatus, title: str | None = None) -> None:
        """The terminal has no agent sessions: nothing to show."""

    async def rename_thread(self, *, thread: ThreadKey, title: str) -> None:
        """The terminal shows no thread title: nothing to rename."""

    def note_privately(self, text: str) -> None:
        """A note for the person at the terminal alone ("Nothing to stop.")."""
        self._end_reply_line()
        self._print(f"(only you can see this) {text}")

    def _end_reply_line(self) -> None:
        """A line of our own below a reply being printed; the reply goes on, prefixed again, after it."""
        if self._mid_reply:
            self._print()
            self._mid_reply = False


async def chat(
    router: ThreadRouter,
    *,
    thread_name: str,
    source: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    export_dir: Path | None = None,
) -> None:
    """Read lines until EOF, each a message (or a card choice, or a command) in ``thread_name``."""
    outbox = ConsoleOutbox(out)
    router.register_outbox(PLATFORM, outbox)
    await router.resume(PLATFORM)
    await router.idle()
    key = console_thread(thread_name)
    user = getpass.getuser()
    author = Author(id=f"local:{user}", display_name=user)
    interactive = source.isatty()
    loop = asyncio.get_running_loop()
    forget_pending: int | None = None  # the thread row a /forget asked about, until the next line
    files: tuple[Attachment, ...] = ()  # held by /attach for the next message
    while True:
        if interactive:
            out.write("you> ")
            out.flush()
        line = await loop.run_in_executor(None, source.readline)
        if not line:
            break
        text = line.rstrip("\n")
        if forget_pending is not None:
            thread_id, forget_pending = forget_pending, None
            if text.strip().lower() in FORGET_YES:
                _private(out, await router.handle_forget_click(ForgetClick(thread_id, author, thread=key)))
            else:
                _private(out, CommandResult(private_note="Kept: nothing was forgotten."))
            continue
        command = parse_command(text, slash=True)
        if command is not None:
            outcome = await router.handle_command(Command(key, command[0], author, argument=command[1]))
            _private(out, outcome, export_dir=export_dir or Path.cwd())
            if outcome.confirm_button is not None:
                forget_pending = parse_forget_button_id(outcome.confirm_button)
                out.write("[y] Forget this thread   (any other line keeps it)\n")
            await _until_idle_or_asked(router, outbox, stop=StopRequest(key, author))
            continue
        choice = CHOICES.get(text.strip().lower()) if outbox.pending_card else None
        approval = APPROVAL_CHOICES.get(text.strip().lower()) if outbox.pending_approval else None
        if outbox.pending_approval and approval:
            approval_id = outbox.pending_approval.approval_id
            outbox.pending_approval = None
            click = ApprovalClick(approval_id=approval_id, action=approval, user=author, thread=key)
            note = (await router.handle_approval_click(click)).private_note
            if note:
                out.write(terminal_safe(f"(only you can see this) {note}\n"))
        elif outbox.pending_card and choice:
            card_id = outbox.pending_card.card_id
            outbox.pending_card = None
            result = await router.handle_click(CardClick(card_id=card_id, action=choice, user=author, thread=key))
            if result.private_note:
                out.write(terminal_safe(f"(only you can see this) {result.private_note}\n"))
        elif is_attach_command(text):
            attached, said = files_to_attach(text)
            files += attached
            out.write(terminal_safe(said) + "\n")
        elif text.strip():
            attached, files = files, ()
            await router.handle_message(
                IncomingMessage(
                    thread=key,
                    message_id=str(uuid.uuid4()),
                    author=author,
                    text=text,
                    thread_title=thread_name,
                    attachments=attached,
                    mentions_bot=text.lstrip().lower().startswith(CONSOLE_MENTION),
                )
            )
        await _until_idle_or_asked(router, outbox, stop=StopRequest(key, author))


def _private(out: TextIO, result: CommandResult, *, export_dir: Path | None = None) -> None:
    """What a command tells the asker alone; an export is written to a file in ``export_dir``."""
    if result.private_note:
        out.write(terminal_safe(f"(only you can see this) {result.private_note}\n"))
    if result.file is not None and export_dir is not None:
        path = export_dir / result.file.filename
        path.write_bytes(result.file.data)
        out.write(terminal_safe(f"(saved to {path})") + "\n")
    out.flush()


async def _until_idle_or_asked(router: ThreadRouter, outbox: ConsoleOutbox, *, stop: StopRequest) -> None:
    """Wait for the bot to finish, or for it to ask for an approval (the reply waits on the answer).

    Meanwhile Ctrl-C stops the answer (``stop``) instead of quitting; the prompt's own Ctrl-C comes back after.
    """
    if outbox.pending_approval is not None:
        return
    with _interrupt_stops(router, outbox, stop):
        await _wait_idle_or_asked(router, outbox)


@contextlib.contextmanager
def _interrupt_stops(router: ThreadRouter, outbox: ConsoleOutbox, stop: StopRequest) -> Iterator[None]:
    """While the block runs, SIGINT asks the router to stop the thread's answer; the handler before comes back after."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread; elsewhere Ctrl-C keeps its usual meaning
        return
    loop = asyncio.get_running_loop()
    before = signal.getsignal(signal.SIGINT)
    pending: set[asyncio.Task[None]] = set()

    async def stop_answer() -> None:
        result = await router.handle_stop(stop)
        if result.private_note:
            outbox.note_privately(result.private_note)

    def interrupted() -> None:
        task = loop.create_task(stop_answer())
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop.add_signal_handler(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, before)


async def _wait_idle_or_asked(router: ThreadRouter, outbox: ConsoleOutbox) -> None:
    """Until no worker runs or an approval is asked, whichever comes first."""
    outbox.approval_asked.clear()
    # router.idle() gathers the workers: it runs in a task of its own, so that leaving it behind here (an
    # approval was asked) cancels nothing; it ends with the reply.
    idle = asyncio.ensure_future(router.idle())
    asked = asyncio.ensure_future(outbox.approval_asked.wait())
    await asyncio.wait({idle, asked}, return_when=asyncio.FIRST_COMPLETED)
    asked.cancel()
