"""The one stop flow: a person asked to stop the answer being written in a thread.

Every platform's Stop ends here as a :class:`~bots.router.messages.StopRequest`: Slack's own Stop button on an
agent session (``agent_session_stopped``), Discord's Stop button and ``/stop``, the console's Ctrl-C. Adapters
only translate; their allowlists decide who may ask at all, and anyone admitted to the thread may stop its
answer, as Slack lets anyone in the thread click its Stop.

Stopping a turn (``agent/stopping.py``): the model's stream is closed, calls waiting for an approval are expired
(their cards say so) and no new call starts, a call already running is let finish and logged to the trail as
usual, and what was shown stays. The answer ends with "(Stopped by NAME.)", which the log, the export and the
session's history keep, so the next turn's model knows its answer was cut. The thread's agent-session status
leaves ``processing`` at once, not when the running call ends. A stop when nothing runs gets a short private
note. With several workers, only the worker running the turn can stop it; elsewhere the note says nothing runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bots.router.answering import AnsweringWorker
from bots.router.messages import StopRequest, ThreadKey
from bots.router.ports import ClickResult, SessionStatus, ThreadOutbox
from bots.router.thread_state import key_columns
from bots.tools.approvals import ApprovalFlow
from storage.protocols import ThreadLog

log = logging.getLogger(__name__)

NOTHING_TO_STOP = "Nothing to stop."


class StopFlow:
    """Stops a thread's running turn for the person who asked."""

    def __init__(
        self,
        *,
        log: ThreadLog,
        answering: AnsweringWorker,
        approvals: ApprovalFlow | None,
        outbox: Callable[[ThreadKey], ThreadOutbox],
    ) -> None:
        self._log = log
        self._answering = answering
        self._approvals = approvals
        self._outbox = outbox

    async def handle(self, request: StopRequest) -> ClickResult:
        thread_id = await self._log.find_thread(**key_columns(request.thread))
        if thread_id is None or not self._answering.stop(thread_id, by=request.user.display_name):
            return ClickResult(private_note=NOTHING_TO_STOP)
        log.info("%s (%s) stopped the answer in %s", request.user.display_name, request.user.id, request.thread)
        await self._outbox(request.thread).set_session_status(thread=request.thread, status=SessionStatus.ACTIVE)
        if self._approvals is not None:
            expired = await self._approvals.expire_thread(thread_id=thread_id, stopped_by=request.user.display_name)
            if expired:
                log.info("%d approval request(s) in %s expired with the stop", expired, request.thread)
        return ClickResult()
