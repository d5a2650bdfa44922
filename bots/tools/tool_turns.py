"""The tools of one turn in one thread, and what happens around each call: its progress line and its trail.

The shared providers (the MCP servers) are joined by the thread's built-ins (``search_thread`` over this
thread's log only), and every provider is wrapped so the thread shows "Running NAME…" while a call runs. Each
finished call is logged to the trail (``storage/trail.py``) after the last message the turn answers, so the
export and the next catch-up show what the agent did, with which arguments and with what result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.steps import ResultHook
from agent.tools import Approver, ToolBox, ToolOutput, ToolProvider, ToolResult, ToolSpec
from bots.replies.render import tool_status
from bots.router.messages import ThreadKey
from bots.router.ports import ThreadOutbox
from bots.tools.approvals import ApprovalFlow
from bots.tools.builtin_tools import SEARCH_THREAD, SearchThreadTool
from storage.protocols import ThreadSearch, ToolTrail

log = logging.getLogger(__name__)

TRAIL_EXCERPT_CHARS = 1_000


@dataclass(frozen=True, slots=True)
class TurnTools:
    """What ``AgentSession.turn`` takes for one turn."""

    box: ToolBox
    approve: Approver
    on_result: ResultHook


class _Announced:
    """A provider whose calls show a progress line in the thread while they run."""

    def __init__(self, provider: ToolProvider, *, outbox: ThreadOutbox, thread: ThreadKey) -> None:
        self._provider = provider
        self._outbox = outbox
        self._thread = thread

    def specs(self) -> list[ToolSpec]:
        return self._provider.specs()

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolOutput:
        await self._status(tool_status(name))
        try:
            return await self._provider.call(name, arguments)
        finally:
            await self._status(None)

    async def _status(self, text: str | None) -> None:
        try:
            await self._outbox.show_status(thread=self._thread, text=text)
        except Exception:
            log.debug("could not show the tool status in %s", self._thread, exc_info=True)


def trail_approval(result: ToolResult) -> str:
    """How the trail records the call's approval."""
    if result.approved is None:
        return "not_needed"
    if result.approved:
        return "approved"
    return "denied" if result.decided_by else "timed_out"


class ThreadTools:
    """Builds each turn's tools; one instance for the whole bot."""

    def __init__(
        self,
        *,
        shared: ToolBox,
        builtins: tuple[str, ...],
        search: ThreadSearch,
        trail: ToolTrail,
        approvals: ApprovalFlow,
        outbox: Callable[[ThreadKey], ThreadOutbox],
        clock: Callable[[], datetime],
    ) -> None:
        self._shared = shared
        self._builtins = builtins
        self._search = search
        self._trail = trail
        self.approvals = approvals
        self._outbox = outbox
        self._clock = clock

    def for_turn(self, *, thread: ThreadKey, thread_id: int, after_message_id: int) -> TurnTools:
        extra: list[ToolProvider] = []
        if SEARCH_THREAD in self._builtins:
            extra.append(SearchThreadTool(search=self._search, thread_id=thread_id))
        outbox = self._outbox(thread)
        box = self._shared.with_extra(extra).wrapped(lambda p: _Announced(p, outbox=outbox, thread=thread))

        async def on_result(result: ToolResult) -> None:
            try:
                await self._trail.record(
                    thread_id=thread_id,
                    after_message_id=after_message_id,
                    call_id=result.call.id,
                    tool=result.call.name,
                    arguments=result.call.arguments,
                    result_excerpt=result.text[:TRAIL_EXCERPT_CHARS],
                    is_error=result.is_error,
                    duration_ms=result.duration_ms,
                    approval=trail_approval(result),
                    decided_by=result.decided_by,
                    cites=result.cites,
                    now=self._clock(),
                )
            except Exception:
                log.exception("could not log the call to %s in %s to the trail", result.call.name, thread)

        return TurnTools(
            box=box, approve=self.approvals.approver(thread=thread, thread_id=thread_id), on_result=on_result
        )
