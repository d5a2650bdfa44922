"""In-thread commands: retry, model, reply, memory, export and forget, one flow for every platform.

Adapters turn what the platform offers (a Discord slash command, a Slack message shortcut or mention, a console
line) into a :class:`Command` for the thread it was used in; the router hands it here, and the adapter shows the
:class:`CommandResult` to the asker alone (an ephemeral reply, a private file). What the rest of the thread
should see goes through the outbox: the new answer of a retry streams like any answer, and forget leaves a short
note.

Who may: anyone the platform's allowlists admit (the adapters filter before this flow sees a command); when
``ADMIN_USERS`` is set, only those ids may change the model or forget the thread, and others get a polite note.

An orphaned thread (no live session: a restart, an eviction) keeps working where it can: ``model`` is stored and
taken by the session the card starts, ``export`` reads the log, ``forget`` purges it; ``retry`` and ``memory``
have no session to act on, so they explain the card instead.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bots.operator.export import as_markdown, markdown_filename
from bots.router.commands.models import ThreadModels
from bots.router.commands.reply import run_reply
from bots.router.forgetting import ErasureFollower
from bots.router.reply_modes import ReplyModes, parse_reply_mode
from bots.router.thread_state import RouterStores, ThreadState, clicked_thread, key_columns
from bots.seam.messages import Author, ThreadKey
from bots.seam.ports import SessionStatus, ThreadOutbox, forget_button_id
from storage.leases import Fence, LeaseLost

log = logging.getLogger(__name__)

NOT_HERE = "I'm not part of this thread yet. Mention me to start a conversation, then use the command."
ADMINS_ONLY = "Sorry, only the bot's admins can {what} here."
ORPHANED = (
    "I restarted (or set this thread aside) since we last spoke, so I hold nothing for it right now. "
    'Write in the thread and choose "Catch me up" or "Start fresh" on the card first.'
)
BUSY = "I'm still answering here. Try again once the answer is finished."
NOTHING_TO_RETRY = "There is no answer of mine since the thread started (or picked up again) to retry."
RETRYING = "Writing a new answer; the old one stays above, marked as replaced in my log."
RETRY_FORWARDED = "Asking for a new answer; it will appear in the thread shortly."
MEMORY_ELSEWHERE = (
    "Another of my processes holds this thread's conversation right now, so I can't show it from here. "
    "Try again after my next answer in this thread."
)
UNKNOWN_MODEL = "I can't use {name!r} here. Choose one of: {choices}."
MODEL_NOW = "This thread uses {model}. Choices: {choices} (the first is the default). Switch with: model NAME"
MODEL_SWITCHED = "This thread now uses {model}. The next answer comes from it."
MODEL_SAME = "This thread already uses {model}."
EXPORTED = "Here is this thread's log as Markdown."
FORGET_QUESTION = (
    "Forget this thread? I will delete its whole log, its summaries and my session for it, as "
    "`threadkeeper forget` does. This cannot be undone."
)
FORGET_LABEL = "Forget this thread"
FORGET_STALE = "This thread is already forgotten."
FORGET_ELSEWHERE = "That button belongs to another thread; nothing was forgotten."
FORGOTTEN_PRIVATE = "Done: I have forgotten this thread."
FORGOTTEN_NOTE = "{who} asked me to forget this thread: its log, summaries and session are gone."
COMMAND_FAILED = "Something went wrong on my side with that command. Try again in a minute."
MEMORY_SUMMARY_MAX = 1_200


class CommandName(enum.StrEnum):
    RETRY = "retry"
    MODEL = "model"
    REPLY = "reply"
    MEMORY = "memory"
    EXPORT = "export"
    FORGET = "forget"


ADMIN_COMMANDS = {CommandName.MODEL: "change the model", CommandName.FORGET: "make me forget a thread"}


@dataclass(frozen=True, slots=True)
class Command:
    """Someone used a command in ``thread``; ``argument`` is the model name for ``model``, the mode for ``reply``
    ("" for none)."""

    thread: ThreadKey
    name: CommandName
    user: Author
    argument: str = ""
    raw: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ForgetClick:
    """Someone confirmed forget with the button; ``thread`` is where they clicked, when the platform says."""

    thread_id: int
    user: Author
    thread: ThreadKey | None = None
    raw: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ExportFile:
    filename: str
    text: str

    @property
    def data(self) -> bytes:
        return self.text.encode("utf-8")


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What the asker alone sees: a note, maybe a file, maybe the forget button (its id in ``confirm_button``)."""

    private_note: str | None = None
    file: ExportFile | None = None
    confirm_button: str | None = None


def parse_command(text: str, *, slash: bool) -> tuple[CommandName, str] | None:
    """``"/model gpt-4o"`` -> (MODEL, "gpt-4o"); None for anything that is not exactly a command.

    ``slash`` requires the leading "/" (the console, where any other line is a message). Only ``model`` and
    ``reply`` take a word after it (``reply`` only a mode's name), so "@bot memory leaks in Python?" and "@bot reply
    to Ann?" stay questions.
    """
    words = text.split()
    if not words or (slash and not words[0].startswith("/")):
        return None
    try:
        name = CommandName(words[0].removeprefix("/").lower())
    except ValueError:
        return None
    rest = words[1:]
    if name is CommandName.MODEL and len(rest) <= 1:
        return name, rest[0] if rest else ""
    if name is CommandName.REPLY and len(rest) == 1 and parse_reply_mode(rest[0]) is not None:
        return name, rest[0].lower()
    return (name, "") if not rest else None


class CommandHost(Protocol):
    """What the command flow asks of the router."""

    async def thread_state(self, key: ThreadKey) -> ThreadState: ...

    async def claim_thread(self, state: ThreadState) -> str | None: ...

    def fence(self, state: ThreadState) -> Fence | None: ...

    def lease_refused(self, state: ThreadState, exc: LeaseLost) -> None: ...

    async def wake_owner(self, owner: str, *, kind: str, thread_id: int, detail: dict[str, str]) -> None: ...

    async def answer_waiting(self, state: ThreadState) -> None: ...

    def outbox(self, key: ThreadKey) -> ThreadOutbox: ...


class CommandFlow:
    """Runs commands for every thread; see the module docstring."""

    def __init__(
        self,
        *,
        stores: RouterStores,
        models: ThreadModels,
        reply_modes: ReplyModes,
        follower: ErasureFollower,
        admins: frozenset[str],
        clock: Callable[[], datetime],
        host: CommandHost,
    ) -> None:
        self._log = stores.log
        self._trail = stores.trail
        self._erasures = stores.erasures
        self._models = models
        self._reply_modes = reply_modes
        self._follower = follower
        self._admins = admins
        self._clock = clock
        self._host = host

    def _refused(self, name: CommandName, user: Author, *, changes: bool = True) -> CommandResult | None:
        what = ADMIN_COMMANDS.get(name)
        if what is None or not changes or not self._admins or user.id in self._admins:
            return None
        log.info("refused %s from %s (ADMIN_USERS)", name, user.id)
        return CommandResult(private_note=ADMINS_ONLY.format(what=what))

    async def handle(self, command: Command) -> CommandResult:
        """Run one command; never raises for what a person did (they get a note), and returns quickly."""
        changes = bool(command.argument) or command.name is not CommandName.MODEL  # anyone may look at the model
        refused = self._refused(command.name, command.user, changes=changes)
        if refused is not None:
            return refused
        thread_id = await self._log.find_thread(**key_columns(command.thread))
        if thread_id is None:
            return CommandResult(private_note=NOT_HERE)
        match command.name:
            case CommandName.RETRY:
                return await self._retry(command)
            case CommandName.MODEL:
                return await self._model(command, thread_id)
            case CommandName.REPLY:
                note = await run_reply(
                    self._reply_modes, thread_id=thread_id, argument=command.argument, user=command.user,
                    now=self._clock(),
                )  # fmt: skip
                return CommandResult(private_note=note)
            case CommandName.MEMORY:
                return await self._memory(command, thread_id)
            case CommandName.EXPORT:
                return await self._export(thread_id)
            case CommandName.FORGET:
                return CommandResult(private_note=FORGET_QUESTION, confirm_button=forget_button_id(thread_id))

    async def _retry(self, command: Command) -> CommandResult:
        """Take the last answer out of the session and the log, and answer what it answered again.

        The session lives in the worker that owns the thread: a retry received by another worker (several workers
        on one Postgres) is handed to the owner, which runs it as if it had received it (:meth:`run_forwarded`).
        """
        state = await self._host.thread_state(command.thread)
        owner = await self._host.claim_thread(state)
        if owner is not None:
            return await self._forward_retry(command, state, owner)
        async with state.lock:
            session = state.session
            if session is None:
                return CommandResult(private_note=ORPHANED)
            if state.worker is not None:
                return CommandResult(private_note=BUSY)
            retracted = session.retract_last_answer()
            if retracted is None:
                return CommandResult(private_note=NOTHING_TO_RETRY)
            answer_id, asked = retracted
            try:
                replaced = await self._log.replace_reply(
                    thread_id=state.thread_id,
                    reply_id=answer_id,
                    answered_ids=asked,
                    now=self._clock(),
                    fence=self._host.fence(state),
                )
            except LeaseLost as exc:  # another worker took the thread meanwhile: the retry is its to do
                self._host.lease_refused(state, exc)
                owner = await self._host.claim_thread(state)
                if owner is None:
                    return CommandResult(private_note=ORPHANED)
                return await self._forward_retry(command, state, owner)
            if not replaced:
                log.warning("answer %s in %s was gone before a retry could replace it", answer_id, state.key)
                return CommandResult(private_note=NOTHING_TO_RETRY)
        log.info("%s asked for a new answer to %d message(s) in %s", command.user.id, len(asked), state.key)
        await self._host.answer_waiting(state)
        return CommandResult(private_note=RETRYING)

    async def _forward_retry(self, command: Command, state: ThreadState, owner: str) -> CommandResult:
        detail = {"command": command.name.value, "user_id": command.user.id, "user_name": command.user.display_name}
        await self._host.wake_owner(owner, kind="command", thread_id=state.thread_id, detail=detail)
        return CommandResult(private_note=RETRY_FORWARDED)

    async def run_forwarded(self, *, thread: ThreadKey, detail: dict[str, str]) -> None:
        """A command another worker received for a thread this one owns; its private note has no one to go to."""
        command = Command(thread, CommandName(detail["command"]), Author(detail["user_id"], detail["user_name"]))
        outcome = await self.handle(command)
        log.info("ran %s for %s, received by another worker: %s", command.name.value, thread, outcome.private_note)

    async def _model(self, command: Command, thread_id: int) -> CommandResult:
        choices = ", ".join(self._models.allowed)
        current = await self._models.model_for(thread_id)
        if not command.argument:
            return CommandResult(private_note=MODEL_NOW.format(model=current, choices=choices))
        model = self._models.resolve(command.argument)
        if model is None:
            return CommandResult(private_note=UNKNOWN_MODEL.format(name=command.argument, choices=choices))
        if model == current:
            return CommandResult(private_note=MODEL_SAME.format(model=model))
        await self._models.choose(thread_id=thread_id, model=model, by_id=command.user.id, now=self._clock())
        state = await self._host.thread_state(command.thread)
        if state.session is not None:
            state.session.use_llm(self._models.client(model))
        log.info("%s switched %s to %s", command.user.id, command.thread, model)
        return CommandResult(private_note=MODEL_SWITCHED.format(model=model))

    async def _memory(self, command: Command, thread_id: int) -> CommandResult:
        model = await self._models.model_for(thread_id)
        state = await self._host.thread_state(command.thread)
        if await self._host.claim_thread(state) is not None:
            return CommandResult(private_note=MEMORY_ELSEWHERE)
        session = state.session
        if session is None:
            return CommandResult(private_note=f"{ORPHANED}\nModel: {model}")
        summary = session.seed_summary
        if summary and len(summary) > MEMORY_SUMMARY_MAX:
            summary = summary[: MEMORY_SUMMARY_MAX - 1].rstrip() + "…"
        lines = [
            f"Model: {session.model}",
            f"Messages in my session: {session.message_count}",
            f"Compaction: {'has run' if session.compacted else 'not yet'}",
            "Seeded with this summary:" if summary else "Seeded with no summary (the session started fresh).",
        ]
        if summary:
            lines.append(summary)
        return CommandResult(private_note="\n".join(lines))

    async def _export(self, thread_id: int) -> CommandResult:
        thread = await self._log.thread(thread_id=thread_id)
        if thread is None:
            return CommandResult(private_note=FORGET_STALE)
        messages = await self._log.all_messages(thread_id=thread_id)
        trail = await self._trail.for_thread(thread_id=thread_id)
        file = ExportFile(markdown_filename(thread), as_markdown(thread, messages, trail))
        return CommandResult(private_note=EXPORTED, file=file)

    async def confirm_forget(self, click: ForgetClick) -> CommandResult:
        """Purge the thread as ``threadkeeper forget`` does, drop what this process holds, say so in the thread."""
        refused = self._refused(CommandName.FORGET, click.user)
        if refused is not None:
            return refused
        if await self._log.thread(thread_id=click.thread_id) is None:
            return CommandResult(private_note=FORGET_STALE)
        key = await clicked_thread(self._log, thread_id=click.thread_id, clicked_in=click.thread)
        if key is None:
            return CommandResult(private_note=FORGET_ELSEWHERE)
        # The thread stays one the bot takes part in (a bare row: every worker's adapters still pass its messages
        # on), so the next message there starts it afresh; the CLI's forget removes the thread entirely.
        count = await self._erasures.forget_thread(thread_id=click.thread_id, now=self._clock(), keep_tracking=True)
        await self._follower.catch_up()  # the journal row drops the live session and state, as for the CLI
        log.info("%s had %s forgotten: %d message(s) purged", click.user.id, key, count)
        await self._host.outbox(key).set_session_status(thread=key, status=SessionStatus.CLOSED)
        try:
            note = FORGOTTEN_NOTE.format(who=click.user.display_name)
            await self._host.outbox(key).post_notice(thread=key, text=note)
        except Exception:
            log.exception("could not post the forget note in %s", key)
        return CommandResult(private_note=FORGOTTEN_PRIVATE)
