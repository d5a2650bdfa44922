"""Threads picked up where they were left: at start-up, on another worker's wake-up or the poll; and at shutdown.

What waits in a thread is the log's, not memory's: a message logged and acknowledged stays ``waiting`` until a
posted reply answers it. So a thread needs attention again whenever the process that would have answered is gone:
an earlier run died (:meth:`Resuming.resume` at start-up, once a platform is connected), another worker died or
handed the thread over (its lease lapsed: the worker poll, ``bots/workers/ownership.py``), or another worker
received something for a thread this one owns (a wake-up: a card click it won, an approval, a command, a Stop).
Each time the same decision is made (:meth:`Resuming.answer_or_card`, also the router's for a delivered message):
the live session answers; else a thread with earlier messages gets its "Where were we?" card, and one without
starts fresh. The files of a waiting message that lost their sources with the process are fetched again by the
turn that answers it (``bots/files/refetching.py``).

The first platform up also starts following the erasure journal, owning threads (``bots/workers/ownership.py``)
and connecting the MCP servers, in the background. At shutdown the MCP servers stop, and every thread with a live
session is shown as suspended (Slack's agent session) until a later run picks it up, all at once and within
:data:`SUSPEND_TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Protocol

from bots.router.answering import AnsweringWorker
from bots.router.cards import CardFlow
from bots.router.commands.flow import CommandFlow
from bots.router.forgetting import ErasureFollower
from bots.router.forgotten_titles import ForgottenTitles
from bots.router.joining import ThreadJoining
from bots.router.stopping import StopFlow
from bots.router.thread_state import ThreadState, ThreadStates, key_of
from bots.seam.messages import Author, CardAction, CardClick, ThreadKey
from bots.seam.ports import BackgroundService, SessionStatus, ThreadOutbox
from bots.tools.tool_turns import ThreadTools
from bots.workers.owned_threads import OwnedThreads
from bots.workers.ownership import ThreadOwnership
from storage.leases import LeaseLost, Wake
from storage.protocols import ThreadLog

log = logging.getLogger(__name__)

SUSPEND_TIMEOUT_S = 5.0  # at shutdown, for showing every live thread as suspended


class ResumeHost(Protocol):
    """What resuming asks of the router."""

    async def thread_state(self, key: ThreadKey) -> ThreadState: ...

    async def claim_thread(self, state: ThreadState) -> str | None: ...

    async def start_session(self, state: ThreadState, *, origin: str) -> None: ...

    def outbox(self, key: ThreadKey) -> ThreadOutbox: ...


class Resuming:
    """Picks threads up where they were left; see the module docstring."""

    def __init__(
        self,
        *,
        log: ThreadLog,
        follower: ErasureFollower,
        ownership: ThreadOwnership,
        states: ThreadStates,
        owned: OwnedThreads,
        cards: CardFlow,
        answering: AnsweringWorker,
        joining: ThreadJoining,
        titles: ForgottenTitles,
        commands: CommandFlow,
        stopping: StopFlow,
        tools: ThreadTools | None,
        tool_servers: BackgroundService | None,
        outboxes: Mapping[str, ThreadOutbox],
        host: ResumeHost,
    ) -> None:
        self._log = log
        self._follower = follower
        self._ownership = ownership
        self._states = states
        self._owned = owned
        self._cards = cards
        self._answering = answering
        self._joining = joining
        self._titles = titles
        self._commands = commands
        self._stopping = stopping
        self._tools = tools
        self._tool_servers = tool_servers
        self._tool_servers_started = False
        self._outboxes = outboxes
        self._host = host

    async def resume(self, platform: str) -> None:
        """Once ``platform`` is connected: erasures are followed and threads owned (``bots/workers/ownership.py``);
        cards left mid catch-up get their buttons back, and every thread of ``platform`` with messages still waiting
        for an answer (logged and acknowledged, then the process died) gets its card, or its answer when the thread
        had nothing before them, without waiting for someone to write again. Threads another live worker owns are
        its business."""
        self._follower.start()
        self._ownership.start(
            attend=self.attend, on_wake=self.on_wake, on_thread_lost=self._owned.lost, platforms=self._platforms
        )
        if self._tool_servers is not None and not self._tool_servers_started:
            self._tool_servers_started = True  # the MCP servers connect in the background, now that a platform is up
            await self._tool_servers.start()
        await self._titles.ready(platform)  # renames owed while no bot of the platform ran
        await self._cards.show_interrupted(platform)
        for record in await self._log.threads_with_waiting(platform=platform):
            state = await self._host.thread_state(key_of(record))
            async with state.lock:
                if await self._host.claim_thread(state) is None:
                    await self._resume_thread(state)

    async def attend(self, thread_id: int) -> None:
        """What waits in a thread this worker owns or may take: answered, or its card shown (the worker poll and
        wake-ups from other workers; see ``bots/workers/ownership.py``)."""
        record = await self._log.thread(thread_id=thread_id)
        if record is None or record.platform not in self._outboxes:
            return
        state = await self._host.thread_state(key_of(record))
        async with state.lock:
            if await self._host.claim_thread(state) is None:
                await self._resume_thread(state)

    async def _resume_thread(self, state: ThreadState) -> None:
        if state.session is None and await self._cards.has_open_card(state):
            await self._cards.show_recorded_card(state)
            return
        waiting = await self._log.waiting(thread_id=state.thread_id)
        new = [m for m in waiting if m.id > state.answered_through and m.platform_message_id not in state.inflight]
        if not new:
            return
        if state.session is None and self._tools is not None and await self._tools.waits_on_card(state.thread_id):
            return  # its approval card outlived the process: a click there resumes the turn, no card needed
        state.inflight.update(m.platform_message_id for m in new)
        await self.answer_or_card(state, first_waiting=waiting[0].id)

    async def answer_or_card(self, state: ThreadState, *, first_waiting: int) -> None:
        """The one decision for what waits (call with the lock held, no open card): the live session answers; a
        thread being joined waits for its history (on any worker: the join is a row); else a thread with messages
        before ``first_waiting`` gets its card, and a thread without, a fresh one."""
        if state.session is not None:
            self._states.touch(state)
            self._answering.kick(state)
        elif await self._joining.defer(state):
            return  # the thread's history is being read: the join answers what waits once it is logged
        elif await self._log.has_messages_before(thread_id=state.thread_id, message_id=first_waiting):
            await self._post_card(state)
        else:
            await self._host.start_session(state, origin="fresh")
            self._answering.kick(state)

    async def answer_waiting(self, state: ThreadState) -> None:
        """After a card's choice: the thread's session is live again, and what waits is answered."""
        await self._host.outbox(state.key).set_session_status(thread=state.key, status=SessionStatus.ACTIVE)
        async with state.lock:
            self._answering.kick(state)

    async def _post_card(self, state: ThreadState) -> None:
        try:
            await self._cards.post_card(state)
        except LeaseLost as exc:
            self._owned.refused(state, exc)
            return
        await self._host.outbox(state.key).set_session_status(thread=state.key, status=SessionStatus.SUSPENDED)

    async def on_wake(self, wake: Wake) -> None:
        """A hint from another worker: a card click it won or a command it received in a thread this one owns, or
        messages waiting."""
        if wake.kind == "card":
            click = CardClick(
                int(wake.detail["card_id"]),
                CardAction(wake.detail["action"]),
                Author(wake.detail["user_id"], wake.detail["user_name"]),
            )
            await self._cards.resolve_won_elsewhere(click)
        elif wake.kind == "approval" and self._tools is not None:
            await self._tools.approvals.clicked_elsewhere(wake.detail)
        elif wake.kind in ("command", "stop") and (record := await self._log.thread(thread_id=wake.thread_id)):
            if wake.kind == "stop":
                await self._stopping.stopped_elsewhere(
                    thread=key_of(record), thread_id=wake.thread_id, detail=wake.detail
                )
            else:
                await self._commands.run_forwarded(thread=key_of(record), detail=wake.detail)
        else:
            await self.attend(wake.thread_id)

    async def tools_settled(self) -> None:
        """Wait until every MCP server has connected or failed once (``check`` and tests; turns never wait)."""
        if self._tool_servers is not None:
            await self._tool_servers.wait_settled()

    async def stop_tool_servers(self) -> None:
        if self._tool_servers is not None and self._tool_servers_started:
            await self._tool_servers.stop()

    def _platforms(self) -> list[str]:
        return list(self._outboxes)

    async def suspend_live(self) -> None:
        """Shutting down: every thread with a live session shows as suspended until a later run picks it up.

        All at once and within ``SUSPEND_TIMEOUT_S``: a slow platform never holds the shutdown up."""
        calls = [
            self._outboxes[key.platform].set_session_status(thread=key, status=SessionStatus.SUSPENDED)
            for key in self._states.live_keys()
            if key.platform in self._outboxes
        ]
        try:
            async with asyncio.timeout(SUSPEND_TIMEOUT_S):
                await asyncio.gather(*calls, return_exceptions=True)
        except TimeoutError:
            log.warning("not every live thread was shown as suspended within %.0fs", SUSPEND_TIMEOUT_S)
