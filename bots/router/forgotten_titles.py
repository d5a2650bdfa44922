"""A thread title made from forgotten text leaves the platform: the renames the erasure journal owes.

Storage blanks a title made from a message in the transaction that forgets the message, and marks that journal
row (``Erasure.title_forgotten``). Whichever process wrote the row (this router on a platform delete or edit,
``threadkeeper forget --user`` beside the bot, the retention purge), the platform still shows the old words as
the thread's title (Slack's agent session and DM title, a Discord thread the bot named), and only a process with
the platform connected can rename it. So every router hands each such row it follows (``bots/router/forgetting.py``)
to :class:`ForgottenTitles`, the one place that renames a thread to :data:`NEUTRAL_TITLE`; a platform event
renames through the same path (its row is followed at once), so no process renames twice.

One rename per row, whatever the number of workers (Postgres): the first router with the thread's platform
connected that sees the row claims it (one conditional UPDATE, ``ErasureStore.claim_title``) and renames; the
others find the claim taken. The lease owner of the thread was not chosen as the renamer: retention purges idle
threads and ``forget --user`` reaches any thread, so most such threads are live in no worker and hold no lease,
and nobody would rename. A worker that dies between its claim and the rename leaves the title on screen: the
window is one platform call, and renaming from every worker instead would multiply the calls (Discord allows a
channel two renames per ten minutes).

A row may be written while no router of its platform runs (the CLI with the bot stopped; the retention purge at
start-up, which runs before the router follows the journal): it stays owed, and :meth:`ready` renames a
platform's owed rows once its adapter is connected. A row of a platform this process does not run stays owed
for one that does (``bots/operator/housekeeping.py`` keeps owed rows for a while). A thread forgotten since, an
uninstalled Slack workspace, a platform that refuses: logged, and the follower goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from bots.router.thread_state import thread_key
from bots.seam.messages import ThreadKey
from bots.seam.ports import ThreadOutbox
from storage.protocols import ErasureStore, ThreadLog
from storage.records import Erasure

log = logging.getLogger(__name__)

NEUTRAL_TITLE = "Thread"  # what a thread is called once the message its title was made from is gone


class ForgottenTitles:
    """Renames, on its platform, each thread whose title a journal row forgot; once per row across workers."""

    def __init__(
        self,
        *,
        log: ThreadLog,
        erasures: ErasureStore,
        outbox: Callable[[ThreadKey], ThreadOutbox],
        spawn: Callable[[Coroutine[Any, Any, None]], object],
        worker_id: str,
    ) -> None:
        self._log = log
        self._erasures = erasures
        self._outbox = outbox
        self._spawn = spawn
        self._worker_id = worker_id
        self._ready: set[str] = set()

    async def ready(self, platform: str) -> None:
        """``platform``'s adapter is connected: rename from now on, starting with the renames its threads owe."""
        self._ready.add(platform)
        for erasure in await self._erasures.titles_owed():
            await self.follow(erasure)

    async def follow(self, erasure: Erasure) -> None:
        """Rename the thread of ``erasure`` if its title was forgotten, its platform runs here, and no other
        worker took the rename. The rename itself runs in the background: a platform call (Discord may hold a
        rename for minutes under its rate limit) must not hold up the journal's other rows."""
        if not erasure.title_forgotten:
            return
        key = await thread_key(self._log, thread_id=erasure.thread_id)
        if key is None:  # forgotten since: nothing shows a title the bot keeps track of
            if await self._erasures.claim_title(erasure_id=erasure.id, by=f"{self._worker_id} (thread gone)"):
                log.info(
                    "the title of thread %d was forgotten, but the thread is gone: nothing to rename", erasure.thread_id
                )
            return
        if key.platform not in self._ready:
            return  # owed to a router of that platform (this one, once connected, or another process)
        if await self._erasures.claim_title(erasure_id=erasure.id, by=self._worker_id):
            self._spawn(self._rename(key))

    async def _rename(self, key: ThreadKey) -> None:
        log.info("the title of %s was made from forgotten text; renaming the thread", key)
        try:
            await self._outbox(key).rename_thread(thread=key, title=NEUTRAL_TITLE)
        except Exception:  # outboxes never raise, but a platform no adapter serves here has none
            log.exception("could not rename %s after its title was forgotten", key)
