"""The one stop flow: a person asked to stop the answer being written in a thread.

Every platform's Stop ends here as a :class:`~bots.seam.messages.StopRequest`: Slack's own Stop button on an
agent session (``agent_session_stopped``), Discord's Stop button and ``/stop``, the console's Ctrl-C. Adapters
only translate; their allowlists decide who may ask at all, and anyone admitted to the thread may stop its
answer, as Slack lets anyone in the thread click its Stop.

Stopping a turn (``agent/stopping.py``): the model's stream is closed, calls waiting for an approval are expired
(their cards say so) and no new call starts, a call already running is let finish and logged to the trail as
usual, and what was shown stays. The answer ends with "(Stopped by NAME.)", which the log, the export and the
session's history keep, so the next turn's model knows its answer was cut. The thread's agent-session status
leaves ``processing`` at once, not when the running call ends. A stop when nothing runs gets a short private
note. With several workers, the Stop may reach a worker that does not own the thread (Slack sends the event
and Discord the click to any of them): that worker hands it to the owner, as a card or approval click is handed
over (a ``stop`` wake-up through ``bots/workers/ownership.py``, LISTEN/NOTIFY on Postgres), and the owner stops
its turn as if the Stop had come to it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bots.router.answering import AnsweringWorker
from bots.router.thread_state import key_columns
from bots.seam.messages import Author, StopRequest, ThreadKey
from bots.seam.ports import ClickResult, SessionStatus, ThreadOutbox
from bots.tools.approvals import ApprovalFlow
from storage.protocols import ThreadLog

log = logging.getLogger(__name__)

NOTHING_TO_STOP = "Nothing to stop."
OwnerElsewhere = Callable[[int], Awaitable[str | None]]  # thread id -> the live worker owning it, if another
WakeOwner = Callable[[str, int, dict[str, str]], Awaitable[None]]  # owner, thread id, the stop's detail


class StopFlow:
    """Stops a thread's running turn for the person who asked."""

    def __init__(
        self,
        *,
        log: ThreadLog,
        answering: AnsweringWorker,
        approvals: ApprovalFlow | None,
        outbox: Callable[[ThreadKey], ThreadOutbox],
        owner_elsewhere: OwnerElsewhere | None = None,
        wake_owner: WakeOwner | None = None,
    ) -> None:
        self._log = log
        self._answering = answering
        self._approvals = approvals
        self._outbox = outbox
        self._owner_elsewhere = owner_elsewhere
        self._wake_owner = wake_owner

    async def handle(self, request: StopRequest) -> ClickResult:
        thread_id = await self._log.find_thread(**key_columns(request.thread))
        if thread_id is None:
            return ClickResult(private_note=NOTHING_TO_STOP)
        if await self._stop_here(thread_id, request.thread, request.user):
            return ClickResult()
        owner = await self._owner_elsewhere(thread_id) if self._owner_elsewhere is not None else None
        if owner is None or self._wake_owner is None:
            return ClickResult(private_note=NOTHING_TO_STOP)
        log.info("the stop in %s goes to its owner %s", request.thread, owner)
        await self._wake_owner(owner, thread_id, {"user_id": request.user.id, "user_name": request.user.display_name})
        return ClickResult()

    async def stopped_elsewhere(self, *, thread: ThreadKey, thread_id: int, detail: dict[str, str]) -> None:
        """A Stop another worker received in a thread this worker owns (its wake-up detail)."""
        if not await self._stop_here(thread_id, thread, Author(detail["user_id"], detail["user_name"])):
            log.info("a stop forwarded to this worker found nothing running in %s", thread)

    async def _stop_here(self, thread_id: int, thread: ThreadKey, user: Author) -> bool:
        """Stop the turn this worker runs in the thread; False when it runs none."""
        if not self._answering.stop(thread_id, by=user.display_name):
            return False
        log.info("%s (%s) stopped the answer in %s", user.display_name, user.id, thread)
        await self._outbox(thread).set_session_status(thread=thread, status=SessionStatus.ACTIVE)
        if self._approvals is not None:
            expired = await self._approvals.expire_thread(thread_id=thread_id, stopped_by=user.display_name)
            if expired:
                log.info("%d approval request(s) in %s expired with the stop", expired, thread)
        return True
