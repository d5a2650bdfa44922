"""ThreadRouter: thread key -> live session, orphan detection, the card flow, one turn at a time per thread.

Adapters hand the router normalized events (``bots/messages.py``) and act for it through a ``ThreadOutbox``.
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
loses nothing: the next start answers them after the card.

5. What is deleted or edited on the platform, forgotten with ``threadkeeper forget`` (here or in another
   process) or purged by retention reaches the live session through the erasure journal before its next turn
   (``bots/forgetting.py``); a catch-up summary written while something was forgotten is thrown away and
   written again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime
from typing import Any

from agent.llm import LLMClient, LLMError
from agent.session import AgentSession, UserTurn
from agent.steps import MAX_TOOL_STEPS
from agent.summarize import Summarizer
from bots import log_context, metrics
from bots.approvals import STALE_NOTE as STALE_APPROVAL_NOTE
from bots.attachment_turns import TurnFiles
from bots.attachments import AttachmentLimits
from bots.cards import INTERRUPTED_NOTE, CardFlow
from bots.commands import Command, CommandFlow, CommandResult, ForgetClick
from bots.commands_models import ThreadModels
from bots.forgetting import ErasureFollower, LogSource
from bots.messages import (
    ApprovalClick,
    Author,
    CardAction,
    CardClick,
    IncomingMessage,
    MessageDeletion,
    MessageEdit,
    ThreadKey,
    utc_now,
)
from bots.ownership import ThreadOwnership
from bots.ports import BackgroundService, CardState, CatchUpCard, ClickResult, ThreadOutbox
from bots.thread_state import RouterStores, ThreadState, ThreadStates, attachment_json, key_columns, prompt_text
from bots.tool_turns import ThreadTools
from bots.workers import OwnedThreads
from storage.leases import Fence, LeaseLost, SoleOwner, Wake
from storage.records import KIND_DELETED, KIND_EDITED, KIND_THREAD, CardRecord, Erasure, LoggedMessage, ThreadGone

log = logging.getLogger(__name__)


SOMETHING_WENT_WRONG = "Something went wrong on my side while answering. Try again in a minute."
LATE_MENTION_GRACE_S = 1.0  # a mention is logged within milliseconds; Slack wants the ack within 3 s


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
        ownership: ThreadOwnership | None = None,
    ) -> None:
        self._log = stores.log
        self._sessions = stores.sessions
        self._cards = stores.cards
        self._events = stores.events
        self._erasures = stores.erasures
        self._trail = stores.trail
        self._feedback = stores.feedback
        self._follower = ErasureFollower(erasures=stores.erasures, seen=erasures_seen, apply=self._apply_erasure)
        self._usage = stores.usage
        self._summarizer = summarizer
        self._system_prompt = system_prompt
        self._assistant_name = assistant_name
        self._clock = clock
        self._outboxes: dict[str, ThreadOutbox] = {}
        self._states = ThreadStates(
            log=stores.log,
            max_live=max_live_sessions,
            max_states=max_thread_states if max_thread_states is not None else max(2 * max_live_sessions, 100),
        )
        self._models = models or ThreadModels(llm=llm)
        self._card_flow = CardFlow(
            stores=stores, summarizer=summarizer, follower=self._follower, clock=clock, host=self
        )
        self._commands = CommandFlow(
            stores=stores, models=self._models, follower=self._follower, admins=admin_users, clock=clock, host=self
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._interrupted = list(interrupted_cards or [])
        self._tools = tools
        self._tool_servers = tool_servers
        self._tool_servers_started = False
        self._max_tool_steps = max_tool_steps
        self._files = TurnFiles(log=stores.log, limits=attachment_limits)
        self.ownership = ownership or ThreadOwnership(leases=SoleOwner())
        self._owned = OwnedThreads(
            ownership=self.ownership, states=self._states, reopen_interrupted=self._card_flow.reopen_interrupted
        )

    # -- wiring ---------------------------------------------------------------------------------------------

    def register_outbox(self, platform: str, outbox: ThreadOutbox) -> None:
        """Act on ``platform`` through ``outbox``."""
        self._outboxes[platform] = outbox

    async def resume(self, platform: str) -> None:
        """Pick up what an earlier run left unfinished on ``platform``; call once its adapter is connected.

        Cards left mid catch-up get their buttons back, and every thread with messages still waiting for an
        answer (logged and acknowledged, then the process died) gets its card, or its answer when the thread
        had nothing before them, without waiting for someone to write again.
        """
        self._follower.start()
        self.ownership.start(
            attend=self.attend, on_wake=self._on_wake, on_thread_lost=self._owned.lost, platforms=self._platforms
        )
        if self._tool_servers is not None and not self._tool_servers_started:
            self._tool_servers_started = True  # connect in the background, now that a platform is up
            await self._tool_servers.start()
        for card in list(self._interrupted):
            thread = await self._log.thread(thread_id=card.thread_id)
            if thread is None or thread.platform != platform:
                continue
            self._interrupted.remove(card)
            key = ThreadKey(thread.platform, thread.workspace, thread.channel, thread.thread)
            await self._card_flow.show_card(card, CatchUpCard(card.id, key, CardState.PENDING, note=INTERRUPTED_NOTE))
        for record in await self._log.threads_with_waiting(platform=platform):
            key = ThreadKey(record.platform, record.workspace, record.channel, record.thread)
            state = await self._state(key, title=None)
            async with state.lock:
                if await self.claim_thread(state) is None:  # another live worker's thread is its own business
                    await self._resume_thread(state)

    async def attend(self, thread_id: int) -> None:
        """What waits in a thread this worker owns or may take: answered, or its card shown (the worker poll and
        wake-ups from other workers; see ``bots/ownership.py``)."""
        record = await self._log.thread(thread_id=thread_id)
        if record is None or record.platform not in self._outboxes:
            return
        state = await self._state(
            ThreadKey(record.platform, record.workspace, record.channel, record.thread), title=None
        )
        async with state.lock:
            if await self.claim_thread(state) is None:
                await self._resume_thread(state)

    async def _resume_thread(self, state: ThreadState) -> None:
        if state.session is None and await self._card_flow.has_open_card(state):
            await self._card_flow.show_recorded_card(state)
            return
        waiting = await self._log.waiting(thread_id=state.thread_id)
        new = [m for m in waiting if m.id > state.answered_through and m.platform_message_id not in state.inflight]
        if not new:
            return
        state.inflight.update(m.platform_message_id for m in new)
        if state.session is not None:
            self._states.touch(state)
            self._kick(state)
        elif await self._log.has_messages_before(thread_id=state.thread_id, message_id=waiting[0].id):
            await self._post_card(state)
        else:
            await self.start_session(state, origin="fresh")
            self._kick(state)

    async def tools_settled(self) -> None:
        """Wait until every MCP server has connected or failed once (``check`` and tests; turns never wait)."""
        if self._tool_servers is not None:
            await self._tool_servers.wait_settled()

    @property
    def live_sessions(self) -> int:
        return self._states.live

    @property
    def thread_states(self) -> int:
        """Threads this process holds state for (bounded by ``max_thread_states``)."""
        return len(self._states)

    async def is_tracked(self, thread: ThreadKey, *, mention_may_be_in_flight: bool = False) -> bool:
        """True when the bot takes part in the thread (it has a log).

        ``mention_may_be_in_flight``: with several workers, the mention that brings the bot into a thread can still
        be on its way into the log at another worker when a quick reply in that thread reaches this one (Slack
        spreads events over the connections), so an untracked thread is looked up once more after
        :data:`LATE_MENTION_GRACE_S` before the message is ignored. The caller's ack waits for the answer: a crash
        meanwhile means a redelivery, not a loss. One worker sees its events in order and never waits.
        """
        if await self._has_log(thread):
            return True
        if not (mention_may_be_in_flight and self.ownership.shared):
            return False
        await asyncio.sleep(LATE_MENTION_GRACE_S)
        return await self._has_log(thread)

    async def _has_log(self, thread: ThreadKey) -> bool:
        return thread in self._states or await self._log.find_thread(**key_columns(thread)) is not None

    async def latest_logged_id(self, thread: ThreadKey) -> str | None:
        """The platform id of the last message logged in ``thread`` (adapters backfill what came after it)."""
        thread_id = await self._log.find_thread(**key_columns(thread))
        if thread_id is None:
            return None
        # Several workers: others go on answering while this one's gateway was down, so the bot's latest reply
        # may be newer than what people wrote meanwhile; read the history after their last logged message instead.
        role = "user" if self.ownership.shared else None
        return await self._log.latest_platform_id(thread_id=thread_id, role=role)

    # -- messages -------------------------------------------------------------------------------------------

    async def handle_message(self, message: IncomingMessage) -> None:
        """Log the message, then answer it, show a card, or let it wait (see module docstring).

        The log write happens before the thread's lock is taken: writes are group-committed in arrival order,
        so a busy thread's messages share one commit instead of queueing one commit each.
        """
        log_context.bind(thread=message.thread, event=message.event_key or message.message_id)
        state = await self._state(message.thread, title=message.thread_title)
        state.pinned += 1  # not dropped while the write is under way and the lock not yet taken
        try:
            row, created = await self._record(state, message)
        except ThreadGone:
            # Forgotten by another process since this one cached the thread: start it afresh.
            log.info("%s was forgotten while the bot ran; starting it afresh", message.thread)
            state.pinned -= 1
            await self._follower.catch_up()
            self._states.drop(state)
            state = await self._state(message.thread, title=message.thread_title)
            state.pinned += 1
            row, created = await self._record(state, message)
        finally:
            state.pinned -= 1
        if created:
            state.files.hold(row.id, message.attachments)  # read by the turn that answers it
        async with state.lock:
            if message.event_key and await self._events.record(
                platform=message.thread.platform, event_key=message.event_key, message_id=row.id, now=self._clock()
            ):
                log.info("dropping redelivered event %s", message.event_key)
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
            if state.session is not None:
                self._states.touch(state)
                self._kick(state)
            elif await self._card_flow.has_open_card(state):
                await self._card_flow.show_recorded_card(state)
                return
            elif await self._log.has_messages_before(thread_id=state.thread_id, message_id=row.id):
                await self._post_card(state)
            else:
                await self.start_session(state, origin="fresh")
                self._kick(state)

    async def _record(self, state: ThreadState, message: IncomingMessage) -> tuple[LoggedMessage, bool]:
        return await self._log.record_message(
            thread_id=state.thread_id,
            platform_message_id=message.message_id,
            author_id=message.author.id,
            author_name=message.author.display_name,
            role="user",
            content=message.text,
            sent_utc=message.sent_utc,
            attachments=[attachment_json(a) for a in message.attachments],
            now=self._clock(),
        )

    async def handle_edit(self, edit: MessageEdit) -> None:
        """Store the new text; the live session and any summary that saw the old one follow (rule 5)."""
        thread_id = await self._log.find_thread(**key_columns(edit.thread))
        if thread_id is not None and await self._erasures.edit_message(
            thread_id=thread_id, platform_message_id=edit.message_id, content=edit.text, edited_utc=edit.edited_utc
        ):
            await self._follower.catch_up()

    async def handle_deletion(self, deletion: MessageDeletion) -> None:
        """Forget the message's text everywhere: log, stored summaries, live session, disk (rule 5)."""
        thread_id = await self._log.find_thread(**key_columns(deletion.thread))
        if thread_id is not None and await self._erasures.delete_message(
            thread_id=thread_id, platform_message_id=deletion.message_id, deleted_utc=deletion.deleted_utc
        ):
            await self._follower.catch_up()

    async def _apply_erasure(self, erasure: Erasure) -> None:
        """One journal row reaches this process's memory: a thread dropped, or a message out of its session."""
        state = self._states.by_thread_id(erasure.thread_id)
        if state is None:
            return
        if erasure.kind == KIND_THREAD:
            log.info("%s was forgotten; its live session and state are dropped", state.key)
            if state.worker is not None:
                state.worker.cancel()
            self._states.drop(state)
            return
        state.catch_up.interrupt()  # a catch-up summary being written may hold the text: stop it, write it anew
        if erasure.kind == KIND_DELETED and erasure.message_id is not None:
            state.files.release([erasure.message_id])  # a deleted message's files leave memory too
        if state.session is None or erasure.message_id is None:
            return
        new_text = None
        if erasure.kind == KIND_EDITED:
            rows = await self._log.visible(thread_id=state.thread_id, ids=[erasure.message_id])
            new_text = prompt_text(rows[0], state.files.read.get(erasure.message_id)) if rows else None
        state.session.forget(message_id=erasure.message_id, new_text=new_text)

    # -- the card -------------------------------------------------------------------------------------------

    async def handle_click(self, click: CardClick) -> ClickResult:
        """Resolve a card once, whoever clicks and however often (``bots/cards.py``); returns at once."""
        return await self._card_flow.handle_click(click)

    async def handle_approval_click(self, click: ApprovalClick) -> ClickResult:
        """Allow or deny a waiting tool call once (``bots/approvals.py``); returns at once."""
        if self._tools is None:
            return ClickResult(private_note=STALE_APPROVAL_NOTE)
        return await self._tools.approvals.handle_click(click)

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
        """retry / model / memory / export / forget in the thread it was used in (``bots/commands.py``)."""
        return await self._commands.handle(command)

    async def handle_forget_click(self, click: ForgetClick) -> CommandResult:
        return await self._commands.confirm_forget(click)

    # -- ownership (several workers on one database; bots/ownership.py) ---------------------------------------

    async def claim_thread(self, state: ThreadState) -> str | None:
        """None when this worker owns the thread now (taking it if nobody live does); else the owner's id."""
        return await self._owned.claim(state)

    def fence(self, state: ThreadState) -> Fence | None:
        return self._owned.fence(state)

    async def wake_owner(self, owner: str, *, kind: str, thread_id: int, detail: dict[str, str]) -> None:
        await self.ownership.wake(owner, kind=kind, thread_id=thread_id, detail=detail)

    async def _post_card(self, state: ThreadState) -> None:
        try:
            await self._card_flow.post_card(state)
        except LeaseLost as exc:
            self._owned.refused(state, exc)

    async def _on_wake(self, wake: Wake) -> None:
        """A hint from another worker: a card click it won in a thread this one owns, or messages waiting."""
        if wake.kind == "card":
            click = CardClick(
                int(wake.detail["card_id"]),
                CardAction(wake.detail["action"]),
                Author(wake.detail["user_id"], wake.detail["user_name"]),
            )
            await self._card_flow.resolve_won_elsewhere(click)
        elif wake.kind == "approval" and self._tools is not None:
            await self._tools.approvals.decided_elsewhere(int(wake.detail["approval_id"]))
        else:
            await self.attend(wake.thread_id)

    def _platforms(self) -> list[str]:
        return list(self._outboxes)

    # -- sessions -------------------------------------------------------------------------------------------

    # The card flow's SessionHost: what bots/cards.py may ask of the router.

    async def thread_state(self, key: ThreadKey) -> ThreadState:
        return await self._state(key, title=None)

    async def thread_model(self, state: ThreadState) -> str:
        return await self._models.model_for(state.thread_id)

    async def start_session(self, state: ThreadState, *, origin: str) -> None:
        """A session with nothing in it yet (Start fresh, or a thread with no earlier messages)."""
        model = await self.thread_model(state)
        session_id = await self._sessions.record(
            thread_id=state.thread_id, origin=origin, model=model, started_utc=self._clock()
        )
        self.install_session(state, session_id=session_id, model=model)

    async def answer_waiting(self, state: ThreadState) -> None:
        async with state.lock:
            self._kick(state)

    def install_session(
        self,
        state: ThreadState,
        *,
        session_id: int,
        model: str,
        summary: str | None = None,
        through: int | None = None,
    ) -> None:
        source = LogSource(
            log=self._log,
            trail=self._trail,
            sessions=self._sessions,
            erasures=self._erasures,
            thread_id=state.thread_id,
            session_id=session_id,
        )
        state.session = AgentSession(
            llm=self._models.client(model),
            summarizer=self._summarizer,
            system_prompt=self._system_prompt,
            seed_summary=summary,
            seed_through=through,
            source=source,
            assistant_name=self._assistant_name,
            max_tool_steps=self._max_tool_steps,
        )
        state.session_id = session_id
        self._states.touch(state)

    # -- answering ------------------------------------------------------------------------------------------

    def _kick(self, state: ThreadState) -> None:
        """Make sure a worker will answer the thread's waiting messages (call with the thread's lock held)."""
        if state.worker is None:
            state.worker = self.spawn(self._work(state))
        else:
            state.wake = True

    async def _work(self, state: ThreadState) -> None:
        """Answer until nothing new came in during the last turn.

        After a failed turn, messages that arrived during it get one more try (with the earlier ones, which
        still wait); if that fails too, both have had a notice, and the next message tries again.
        """
        retried = False
        try:
            while True:
                state.wake = False
                answered = await self._answer(state)
                async with state.lock:
                    again = state.wake and (answered or not retried)
                    retried = not answered
                    if not again or state.forgotten:
                        state.worker = None
                        return
        except BaseException:
            state.worker = None
            raise

    async def _answer(self, state: ThreadState) -> bool:
        """One turn over every waiting message; False when it failed (the messages stay waiting).

        The reply is committed to the log (and what it answered marked answered) the moment the model has
        finished and before the adapter writes the reply's last part: a crash in between leaves a reply cut
        short on the platform, never a question that a restarted bot would answer a second time.
        """
        await self._follower.catch_up()
        waiting = await self._log.waiting(thread_id=state.thread_id)
        session = state.session
        if not waiting or session is None:
            return True
        author_id = waiting[-1].author_id
        if await self._usage.refuse_over_cap(outboxes=self._outboxes, thread=state.key, user_id=author_id):
            state.inflight.difference_update(m.platform_message_id for m in waiting)
            return True
        inputs = await self._files.prepare(
            held=state.files,
            thread=state.key,
            thread_id=state.thread_id,
            waiting=waiting,
            vision=await session.sees_images(),
            outbox=self.outbox(state.key),
        )
        self._usage.begin(thread_id=state.thread_id, user_id=author_id)
        ids = [m.id for m in waiting]
        turns = [
            UserTurn(author=m.author_name, text=i.text, message_id=m.id, images=i.images)
            for m, i in zip(waiting, inputs, strict=True)
        ]
        provisional_id = f"local-{uuid.uuid4()}"
        committed = False

        tools = (
            None
            if self._tools is None
            else self._tools.for_turn(thread=state.key, thread_id=state.thread_id, after_message_id=ids[-1])
        )

        async def commit_when_complete() -> AsyncIterator[str]:
            nonlocal committed
            turn = (
                session.turn(turns)
                if tools is None
                else session.turn(turns, tools=tools.box, approve=tools.approve, on_result=tools.on_result)
            )
            async for delta in turn:
                yield delta
            reply_id = await self._log.record_reply(
                thread_id=state.thread_id,
                platform_message_id=provisional_id,
                author_name=self._assistant_name,
                content=session.last_reply,
                answered_ids=ids,
                now=self._clock(),
                fence=self.fence(state),
            )
            if reply_id is not None:
                session.bind_reply(reply_id)
            committed = True

        try:
            posted = await self.outbox(state.key).stream_reply(thread=state.key, deltas=commit_when_complete())
        except LeaseLost as exc:
            self._usage.settle()
            self._owned.refused(state, exc)
            return True  # nothing to retry here: the thread's new owner answers what waits
        except Exception as exc:
            await self._report_failure(state, exc)
            if not committed:
                await self._events.mark_handled(message_ids=ids, now=self._clock())
            posted = []
        self._usage.settle()
        if committed:
            metrics.reply_posted(state.key.platform)
            if posted:
                await self._log.set_platform_id(thread_id=state.thread_id, old=provisional_id, new=posted[0])
            state.answered_through = max(state.answered_through, *ids)
            state.files.release(ids)
            self._states.touch(state)
        state.inflight.difference_update(m.platform_message_id for m in waiting)
        return committed

    async def _report_failure(self, state: ThreadState, exc: Exception) -> None:
        if isinstance(exc, LLMError):
            log.warning("no answer in %s: %s", state.key, exc)
            text = exc.user_message
        else:
            log.error("answering in %s failed", state.key, exc_info=exc)
            text = SOMETHING_WENT_WRONG
        try:
            await self.outbox(state.key).post_notice(thread=state.key, text=text)
        except Exception:
            log.exception("could not post the failure notice in %s", state.key)

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
        if self._tool_servers is not None and self._tool_servers_started:
            await self._tool_servers.stop()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.ownership.stop()
