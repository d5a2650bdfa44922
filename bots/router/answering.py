"""The answering worker: one task per thread, one turn at a time, messages of a busy turn answered together.

The router decides *that* a thread is answered (``kick``); this flow answers: it reads what waits from the log,
runs one turn over all of it, commits the reply to the log the moment the model has finished, and reports a
failure to the thread in a short true sentence (the log says why). It asks the router (an
:class:`AnswerHost`) only for the thread's outbox, its fence, and to run a task.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from datetime import datetime
from typing import Any, Protocol

from agent.llm import LLMError
from agent.session import UserTurn
from agent.stopping import TurnStop
from bots.files.attachment_turns import TurnFiles
from bots.operator import metrics
from bots.router.forgetting import ErasureFollower
from bots.router.thread_state import RouterStores, ThreadState, ThreadStates
from bots.seam.messages import ThreadKey
from bots.seam.ports import SessionStatus, ThreadOutbox
from bots.tools.tool_turns import ThreadTools
from bots.workers.owned_threads import OwnedThreads
from storage.leases import Fence, LeaseLost

log = logging.getLogger(__name__)

SOMETHING_WENT_WRONG = "Something went wrong on my side while answering. Try again in a minute."


class AnswerHost(Protocol):
    """What the answering worker asks of the router."""

    def outbox(self, key: ThreadKey) -> ThreadOutbox: ...

    def fence(self, state: ThreadState) -> Fence | None: ...

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]: ...


class AnsweringWorker:
    """Answers the waiting messages of every thread it is kicked for; see the module docstring."""

    def __init__(
        self,
        *,
        stores: RouterStores,
        states: ThreadStates,
        owned: OwnedThreads,
        follower: ErasureFollower,
        files: TurnFiles,
        tools: ThreadTools | None,
        outboxes: Mapping[str, ThreadOutbox],
        assistant_name: str,
        clock: Callable[[], datetime],
        host: AnswerHost,
    ) -> None:
        self._log = stores.log
        self._events = stores.events
        self._usage = stores.usage
        self._states = states
        self._owned = owned
        self._follower = follower
        self._files = files
        self._tools = tools
        self._outboxes = outboxes
        self._assistant_name = assistant_name
        self._clock = clock
        self._host = host
        self._running: dict[int, TurnStop] = {}  # thread row id -> the stop switch of its turn under way

    def stop(self, thread_id: int, *, by: str) -> bool:
        """Stop the turn under way in the thread (``agent/stopping.py``); False when none runs or it is stopping."""
        running = self._running.get(thread_id)
        return running is not None and running.request(by=by)

    def kick(self, state: ThreadState) -> None:
        """Make sure a worker will answer the thread's waiting messages (call with the thread's lock held)."""
        if state.worker is None:
            state.worker = self._host.spawn(self._work(state))
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
        answerable = await self._usage.set_aside_capped(waiting, outboxes=self._outboxes, thread=state.key)
        if len(answerable) < len(waiting):  # capped people's messages wait, unanswered, until their cap resets
            state.inflight.difference_update(m.platform_message_id for m in waiting if m not in answerable)
            waiting = answerable
            if not waiting:
                return True
        author_id = waiting[-1].author_id
        inputs = await self._files.prepare(
            held=state.files,
            thread=state.key,
            thread_id=state.thread_id,
            waiting=waiting,
            vision=await session.sees_images(),
            outbox=self._host.outbox(state.key),
        )
        self._usage.begin(thread_id=state.thread_id, user_id=author_id)
        ids = [m.id for m in waiting]
        turns = [
            UserTurn(author=m.author_name, text=i.text, message_id=m.id, images=i.images)
            for m, i in zip(waiting, inputs, strict=True)
        ]
        provisional_id = f"local-{uuid.uuid4()}"
        committed = False

        tools = None
        if self._tools is not None:  # a turn a restart cut short resumes from its journal (bots/tools/journal.py)
            interrupted = await self._tools.interrupted(thread=state.key, thread_id=state.thread_id, waiting=ids)
            tools = self._tools.for_turn(
                thread=state.key, thread_id=state.thread_id, after_message_id=ids[-1], interrupted=interrupted
            )

        async def still_within_cap() -> str | None:
            """Before each further model step of a tool turn: a note to stop with once the author is capped."""
            return self._usage.step_cap_note() if await self._usage.over_cap(user_id=author_id) else None

        stop = self._running[state.thread_id] = TurnStop()

        async def commit_when_complete() -> AsyncIterator[str]:
            nonlocal committed
            before_step = still_within_cap if self._usage.daily_cap is not None else None
            turn = (
                session.turn(turns, before_step=before_step, stop=stop)
                if tools is None
                else session.turn(
                    turns,
                    tools=tools.box,
                    approve=tools.approve,
                    on_result=tools.on_result,
                    before_step=before_step,
                    stop=stop,
                    journal=tools.journal,
                    resumed=tools.resumed,
                )
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
                fence=self._host.fence(state),
            )
            if reply_id is not None:
                session.bind_reply(reply_id)
            committed = True
            if self._tools is not None and tools is not None:
                try:
                    await self._tools.turn_ended(thread_id=state.thread_id, turn=tools)
                except Exception:  # the next turn finds its messages answered and closes the steps then
                    log.exception("could not close the turn journal in %s", state.key)

        outbox = self._host.outbox(state.key)
        record = await self._log.thread(thread_id=state.thread_id)
        await outbox.set_session_status(
            thread=state.key, status=SessionStatus.PROCESSING, title=record.title if record is not None else None
        )
        try:
            posted = await outbox.stream_reply(thread=state.key, deltas=commit_when_complete())
        except LeaseLost as exc:
            self._usage.settle()
            self._owned.refused(state, exc)
            return True  # nothing to retry here: the thread's new owner answers what waits
        except Exception as exc:
            await self._report_failure(state, exc)
            if not committed:
                await self._events.mark_handled(message_ids=ids, now=self._clock())
            posted = []
        finally:
            self._running.pop(state.thread_id, None)
        if not stop.requested:  # a stop moved the status on already
            await outbox.set_session_status(thread=state.key, status=SessionStatus.ACTIVE)
        if stop.by is not None:
            log.info("the answer in %s was stopped by %s", state.key, stop.by)
        self._usage.settle()
        if committed:
            metrics.reply_posted(state.key.platform)
            if posted and not await self._name_reply(state, provisional_id, posted[0]):
                return True  # the thread's new owner goes on from the log
            state.answered_through = max(state.answered_through, *ids)
            state.answered_author = author_id  # a question of theirs right after is for the bot (reply_modes.py)
            state.files.release(ids)
            self._states.touch(state)
        state.inflight.difference_update(m.platform_message_id for m in waiting)
        return committed

    async def _name_reply(self, state: ThreadState, provisional_id: str, posted_id: str) -> bool:
        """The posted reply's platform id into the log; False when this worker no longer owns the thread."""
        try:
            await self._log.set_platform_id(
                thread_id=state.thread_id, old=provisional_id, new=posted_id, fence=self._host.fence(state)
            )
        except LeaseLost as exc:  # the reply is logged (fenced) and posted; only its provisional id stays
            self._owned.refused(state, exc)
            return False
        return True

    async def _report_failure(self, state: ThreadState, exc: Exception) -> None:
        if isinstance(exc, LLMError):
            log.warning("no answer in %s: %s", state.key, exc)
            text = exc.user_message
        else:
            log.error("answering in %s failed", state.key, exc_info=exc)
            text = SOMETHING_WENT_WRONG
        try:
            await self._host.outbox(state.key).post_notice(thread=state.key, text=text)
        except Exception:
            log.exception("could not post the failure notice in %s", state.key)
