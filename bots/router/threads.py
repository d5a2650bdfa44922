"""ThreadRouter: thread key -> live session, orphan detection, the card flow, one turn at a time per thread.

Adapters hand the router normalized events (``bots/seam/messages.py``) and act for it through a ``ThreadOutbox``.
The rules it enforces, in order:

1. Every delivered message of a tracked thread is logged first, exactly once (a unique constraint in SQLite).
2. A thread with a live session is answered by a per-thread worker task: one turn at a time, and messages that
   arrive during a turn are answered together by the next one. Threads never wait on each other.
3. A thread with earlier logged messages but no live session (restart, eviction) is orphaned: its first new
   message gets one "Where were we?" card (a partial unique index in SQLite makes a second impossible); later
   messages are logged and wait.
4. A card click wins by a conditional UPDATE in SQLite, so double clicks, two users, and clicks after further
   restarts all end in exactly one outcome. Then the waiting messages are answered.

Which messages are waiting is the log's ``reply_state``, not memory, so a crash between logging and answering
loses nothing: the next start answers them after the card (``bots/router/resuming.py``), and the files a waiting
message lost with the process are fetched again from its platform (``bots/files/refetching.py``).

5. What is deleted or edited on the platform, forgotten with ``threadkeeper forget`` (here or in another
   process) or purged by retention reaches the live session through the erasure journal before its next turn
   (``bots/router/forgetting.py``); a catch-up summary written while something was forgotten is thrown away and
   written again. A thread title made from forgotten text is renamed on the platform, by one worker
   (``bots/router/forgotten_titles.py``).

6. A mention in a thread the bot has no log for opens a join: the mention is logged and acknowledged, then the
   thread's earlier messages are read and logged before it, as read (``bots/router/joining.py``); nothing in the
   thread is answered until they are, and the session answering it hears them. A message the thread's reply mode does
   not answer (``bots/router/reply_modes.py``) is logged as read too: no answer, no card, context for the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from agent.llm import LLMClient
from agent.steps import MAX_TOOL_STEPS
from agent.summarize import Summarizer
from agent.transcription import SpeechToText
from bots.files.attachment_turns import TurnFiles
from bots.files.attachments import AttachmentLimits
from bots.files.downloads import FetchPolicy
from bots.operator import log_context
from bots.router.answering import AnsweringWorker
from bots.router.cards import CardFlow
from bots.router.commands.flow import Command, CommandFlow, CommandResult, ForgetClick
from bots.router.commands.models import ThreadModels
from bots.router.forgetting import Forgetting
from bots.router.forgotten_titles import ForgottenTitles
from bots.router.intake import MessageIntake
from bots.router.joining import DEFAULT_JOIN_HISTORY_MESSAGES, ThreadJoining
from bots.router.live_sessions import LiveSessions
from bots.router.reply_modes import ReplyMode, ReplyModes
from bots.router.resuming import Resuming
from bots.router.stopping import StopFlow
from bots.router.thread_state import RouterStores, ThreadState, ThreadStates, key_columns
from bots.seam.messages import (
    ApprovalClick,
    ArgumentsClick,
    Author,
    CardClick,
    IncomingMessage,
    MessageDeletion,
    MessageEdit,
    StopRequest,
    ThreadKey,
    utc_now,
)
from bots.seam.ports import BackgroundService, ClickResult, MessageFiles, ThreadHistory, ThreadOutbox
from bots.tools.approvals import STALE_NOTE as STALE_APPROVAL_NOTE
from bots.tools.tool_turns import ThreadTools
from bots.workers.owned_threads import OwnedThreads
from bots.workers.ownership import ThreadOwnership
from storage.leases import Fence, LeaseLost, SoleOwner
from storage.records import CardRecord

log = logging.getLogger(__name__)


class ThreadRouter:
    """Platform-neutral brain of the bot; see the module docstring for its rules."""

    def __init__(
        self,
        *,
        stores: RouterStores,
        llm: LLMClient,
        summarizer: Summarizer,
        system_prompt: str,
        max_live_sessions: int,
        assistant_name: str = "threadkeeper",
        clock: Callable[[], datetime] = utc_now,
        interrupted_cards: list[CardRecord] | None = None,
        erasures_seen: int = 0,
        max_thread_states: int | None = None,
        tools: ThreadTools | None = None,
        tool_servers: BackgroundService | None = None,
        max_tool_steps: int = MAX_TOOL_STEPS,
        models: ThreadModels | None = None,
        admin_users: frozenset[str] = frozenset(),
        attachment_limits: AttachmentLimits | None = None,
        fetch_policy: FetchPolicy | None = None,
        speech_to_text: SpeechToText | None = None,
        ownership: ThreadOwnership | None = None,
        reply_modes: ReplyModes | None = None,
        join_history_messages: int = DEFAULT_JOIN_HISTORY_MESSAGES,
    ) -> None:
        self._cards = stores.cards
        self._events = stores.events
        self._feedback = stores.feedback
        self._clock = clock
        self._outboxes: dict[str, ThreadOutbox] = {}
        self._states = ThreadStates(
            log=stores.log,
            max_live=max_live_sessions,
            max_states=max_thread_states if max_thread_states is not None else max(2 * max_live_sessions, 100),
        )
        self.ownership = ownership or ThreadOwnership(leases=SoleOwner())
        titles = ForgottenTitles(
            log=stores.log,
            erasures=stores.erasures,
            outbox=self.outbox,
            spawn=self.spawn,
            worker_id=self.ownership.worker_id,
        )
        self._forgetting = Forgetting(
            log=stores.log, erasures=stores.erasures, states=self._states, seen=erasures_seen, titles=titles
        )
        self._follower = self._forgetting.follower
        self._intake = MessageIntake(log=stores.log, states=self._states, follower=self._follower, clock=clock)
        self._models = models or ThreadModels(llm=llm)
        self._reply_modes = reply_modes or ReplyModes(
            log=stores.log, store=None, default=ReplyMode.ALL, assistant_name=assistant_name
        )
        self._live = LiveSessions(
            stores=stores,
            states=self._states,
            models=self._models,
            summarizer=summarizer,
            system_prompt=system_prompt,
            assistant_name=assistant_name,
            max_tool_steps=max_tool_steps,
            clock=clock,
        )
        self._card_flow = CardFlow(
            stores=stores,
            summarizer=summarizer,
            follower=self._follower,
            clock=clock,
            host=self,
            interrupted=interrupted_cards,
        )
        self._commands = CommandFlow(
            stores=stores,
            models=self._models,
            reply_modes=self._reply_modes,
            follower=self._follower,
            admins=admin_users,
            clock=clock,
            host=self,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._tools = tools
        if tools is not None:  # a click on an approval whose turn died with its process resumes that turn
            tools.approvals.resume_turn = self._card_flow.resume_for_approval
            tools.approvals.spawn = self.spawn
        self._owned = OwnedThreads(
            ownership=self.ownership, states=self._states, reopen_interrupted=self._card_flow.reopen_interrupted
        )
        self._files = TurnFiles(log=stores.log, limits=attachment_limits, policy=fetch_policy, speech=speech_to_text)
        self._answering = AnsweringWorker(
            stores=stores,
            states=self._states,
            owned=self._owned,
            follower=self._follower,
            files=self._files,
            tools=tools,
            outboxes=self._outboxes,
            assistant_name=assistant_name,
            clock=clock,
            host=self,
        )
        self._joining = ThreadJoining(
            intake=self._intake,
            log=stores.log,
            joins=stores.joins,
            host=self,
            kick=self._answering.kick,
            clock=clock,
            limit=join_history_messages,
        )
        self._stopping = StopFlow(
            log=stores.log,
            answering=self._answering,
            approvals=tools.approvals if tools else None,
            outbox=self.outbox,
            owner_elsewhere=self.ownership.elsewhere,
            wake_owner=lambda owner, thread_id, detail: self.wake_owner(
                owner, kind="stop", thread_id=thread_id, detail=detail
            ),
        )
        self._resuming = Resuming(
            log=stores.log,
            follower=self._follower,
            ownership=self.ownership,
            states=self._states,
            owned=self._owned,
            cards=self._card_flow,
            answering=self._answering,
            joining=self._joining,
            titles=self._forgetting.titles,
            commands=self._commands,
            stopping=self._stopping,
            tools=tools,
            tool_servers=tool_servers,
            outboxes=self._outboxes,
            host=self,
        )

    # -- wiring ---------------------------------------------------------------------------------------------

    def register_outbox(self, platform: str, outbox: ThreadOutbox) -> None:
        """Act on ``platform`` through ``outbox``."""
        self._outboxes[platform] = outbox

    def register_history(self, platform: str, history: ThreadHistory) -> None:
        """Read a thread's earlier messages through ``history`` when a mention brings the bot into it."""
        self._joining.register(platform, history)

    def register_files(self, platform: str, files: MessageFiles) -> None:
        """Fetch a waiting message of ``platform`` again through ``files`` when a restart left its files unread."""
        self._files.register(platform, files)

    async def resume(self, platform: str) -> None:
        """Pick up what an earlier run left unfinished on ``platform`` (``bots/router/resuming.py``); call once its
        adapter is connected."""
        await self._resuming.resume(platform)

    async def tools_settled(self) -> None:
        """Wait until every MCP server has connected or failed once (``check`` and tests; turns never wait)."""
        await self._resuming.tools_settled()

    @property
    def live_sessions(self) -> int:
        return self._states.live

    @property
    def thread_states(self) -> int:
        """Threads this process holds state for (bounded by ``max_thread_states``)."""
        return len(self._states)

    async def is_tracked(self, thread: ThreadKey, *, mention_may_be_in_flight: bool = False) -> bool:
        """True when the bot takes part in the thread (it has a log); see :meth:`MessageIntake.is_tracked`.

        Only with several workers can a mention still be in flight at another worker."""
        return await self._intake.is_tracked(thread, look_again=mention_may_be_in_flight and self.ownership.shared)

    async def latest_logged_id(self, thread: ThreadKey) -> str | None:
        """The platform id of the last message logged in ``thread`` (adapters backfill what came after it)."""
        return await self._intake.latest_logged_id(thread, shared=self.ownership.shared)

    # -- messages -------------------------------------------------------------------------------------------

    async def handle_message(self, message: IncomingMessage) -> None:
        """Log the message (``router/intake.py``), then answer it, show a card, or let it wait (module docstring)."""
        log_context.bind(thread=message.thread, event=message.event_key or message.message_id)
        joining = await self._joining.begin(message)  # its history is read after the ack (router/joining.py)
        answers = joining or await self._reply_modes.answers(await self._intake.state_of(message), message)
        state, row, created = await self._intake.record(message, read=not answers)
        async with state.lock:
            if message.event_key and await self._events.record(
                platform=message.thread.platform, event_key=message.event_key, message_id=row.id, now=self._clock()
            ):
                log.info("dropping redelivered event %s", message.event_key)
                return
            if not answers:  # logged as read: the live session hears it, the next answer has it in context
                if created:
                    self._joining.hear(state, [row])
                return
            if row.id <= state.answered_through:
                return  # a turn that started after it was logged has answered it already
            if not created and (row.reply_state != "waiting" or row.platform_message_id in state.inflight):
                return
            owner = await self.claim_thread(state)
            if owner is not None:  # another worker owns the thread: it answers from the log, woken now
                await self.ownership.wake(owner, kind="thread", thread_id=state.thread_id)
                return
            state.inflight.add(row.platform_message_id)
            if state.session is None and await self._card_flow.has_open_card(state):
                await self._card_flow.show_recorded_card(state)
                return
            await self._resuming.answer_or_card(state, first_waiting=row.id)

    async def handle_edit(self, edit: MessageEdit) -> None:
        """Store the new text; the live session and any summary that saw the old one follow (rule 5)."""
        await self._forgetting.handle_edit(edit)

    async def handle_deletion(self, deletion: MessageDeletion) -> None:
        """Forget the message's text everywhere: log, stored summaries, live session, disk (rule 5)."""
        await self._forgetting.handle_deletion(deletion)

    # -- the card -------------------------------------------------------------------------------------------

    async def handle_click(self, click: CardClick) -> ClickResult:
        """Resolve a card once, whoever clicks and however often (``bots/router/cards.py``); returns at once."""
        return await self._card_flow.handle_click(click)

    async def handle_approval_click(self, click: ApprovalClick) -> ClickResult:
        """Allow or deny a waiting tool call once (``bots/tools/approvals.py``); returns at once."""
        if self._tools is None:
            return ClickResult(private_note=STALE_APPROVAL_NOTE)
        return await self._tools.approvals.handle_click(click)

    async def handle_arguments_click(self, click: ArgumentsClick) -> ClickResult:
        """ "Show all" on an approval card: the call's full arguments, for the clicker alone."""
        if self._tools is None:
            return ClickResult(private_note=STALE_APPROVAL_NOTE)
        return await self._tools.approvals.show_arguments(click)

    async def handle_feedback(self, *, thread: ThreadKey, answer_id: str, user: Author, positive: bool) -> bool:
        """👍 / 👎 on an answer: recorded, a person's second click replacing their first; False if it is no answer."""
        if self._feedback is None:
            return False
        return await self._feedback.record(
            **key_columns(thread),
            answer_id=answer_id,
            user_id=user.id,
            user_name=user.display_name,
            rating="positive" if positive else "negative",
            now=self._clock(),
        )

    async def handle_command(self, command: Command) -> CommandResult:
        """retry / model / memory / export / forget in the thread it was used in (``bots/router/commands/``)."""
        return await self._commands.handle(command)

    async def handle_forget_click(self, click: ForgetClick) -> CommandResult:
        return await self._commands.confirm_forget(click)

    async def handle_stop(self, request: StopRequest) -> ClickResult:
        """Stop the answer being written in the thread (``bots/router/stopping.py``); a note when none is."""
        return await self._stopping.handle(request)

    # -- ownership (several workers on one database; bots/workers/ownership.py) ---------------------------------------

    async def claim_thread(self, state: ThreadState) -> str | None:
        """None when this worker owns the thread now (taking it if nobody live does); else the owner's id."""
        return await self._owned.claim(state)

    def fence(self, state: ThreadState) -> Fence | None:
        return self._owned.fence(state)

    def lease_refused(self, state: ThreadState, exc: LeaseLost) -> None:
        """A fenced write in the thread was refused: this worker lets the thread go (``workers/owned_threads.py``)."""
        self._owned.refused(state, exc)

    async def wake_owner(self, owner: str, *, kind: str, thread_id: int, detail: dict[str, str]) -> None:
        await self.ownership.wake(owner, kind=kind, thread_id=thread_id, detail=detail)

    # -- sessions -------------------------------------------------------------------------------------------

    # The card flow's SessionHost: what bots/router/cards.py may ask of the router.

    async def thread_state(self, key: ThreadKey) -> ThreadState:
        return await self._state(key, title=None)

    async def thread_model(self, state: ThreadState) -> str:
        return await self._live.model_for(state)

    async def start_session(self, state: ThreadState, *, origin: str) -> None:
        """A session with nothing in it yet (Start fresh, or a thread with no earlier messages)."""
        await self._live.start(state, origin=origin)

    async def answer_waiting(self, state: ThreadState) -> None:
        await self._resuming.answer_waiting(state)

    def install_session(
        self,
        state: ThreadState,
        *,
        session_id: int,
        model: str,
        summary: str | None = None,
        through: int | None = None,
    ) -> None:
        self._live.install(state, session_id=session_id, model=model, summary=summary, through=through)

    # -- plumbing -------------------------------------------------------------------------------------------

    async def _state(self, key: ThreadKey, *, title: str | None) -> ThreadState:
        return await self._states.get(key, title=title, now=self._clock())

    def outbox(self, key: ThreadKey) -> ThreadOutbox:
        try:
            return self._outboxes[key.platform]
        except KeyError:
            raise RuntimeError(f"no outbox registered for platform {key.platform!r}") from None

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def idle(self) -> None:
        """Wait until no worker is running (tests and graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel in-flight answers (their messages stay waiting in the log), then hand the leases back."""
        await self._follower.stop()
        await self._resuming.stop_tool_servers()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self._resuming.suspend_live()
        await self._files.close()
        await self.ownership.stop()
