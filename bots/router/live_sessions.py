"""Starting and installing a thread's live session: the model it runs on, its log as source, its seed.

Kept out of the router so that ``bots/router/threads.py`` decides *when* a thread gets a session (a fresh thread, a
card click) and this module says *what* a session is made of.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from agent.session import AgentSession
from agent.summarize import Summarizer
from bots.router.commands.models import ThreadModels
from bots.router.forgetting import LogSource
from bots.router.thread_state import RouterStores, ThreadState, ThreadStates


class LiveSessions:
    """Makes the ``AgentSession`` of a thread, recorded in the session store, and counts it live."""

    def __init__(
        self,
        *,
        stores: RouterStores,
        states: ThreadStates,
        models: ThreadModels,
        summarizer: Summarizer,
        system_prompt: str,
        assistant_name: str,
        max_tool_steps: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._log = stores.log
        self._sessions = stores.sessions
        self._erasures = stores.erasures
        self._trail = stores.trail
        self._states = states
        self._models = models
        self._summarizer = summarizer
        self._system_prompt = system_prompt
        self._assistant_name = assistant_name
        self._max_tool_steps = max_tool_steps
        self._clock = clock

    async def model_for(self, state: ThreadState) -> str:
        return await self._models.model_for(state.thread_id)

    async def start(self, state: ThreadState, *, origin: str) -> None:
        """A session with nothing in it yet (Start fresh, or a thread with no earlier messages)."""
        model = await self.model_for(state)
        session_id = await self._sessions.record(
            thread_id=state.thread_id, origin=origin, model=model, started_utc=self._clock()
        )
        self.install(state, session_id=session_id, model=model)

    def install(
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
