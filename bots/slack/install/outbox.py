"""WorkspaceOutbox: the router's calls to the Slack outbox, each made for its thread's workspace.

The router answers from its own tasks, posts cards for threads an earlier run left at start-up and expires
approvals on a timer: none of it runs inside a bolt request, so nothing says which workspace's token to use but
the thread key. This wrapper, registered with the router in OAuth mode, makes each call act for the thread's
workspace (``workspaces.acting_for_thread``), keeping the org an event of the same workspace already named. The outbox
itself (``bots/slack/outbox.py``) stays unaware of installations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from bots.seam.messages import ThreadKey
from bots.seam.ports import ApprovalCard, CatchUpCard, SessionStatus, ThreadOutbox
from bots.slack.install.workspaces import acting_for_thread as _for


class WorkspaceOutbox:
    """ThreadOutbox: the Slack outbox, acting for each call's thread."""

    def __init__(self, outbox: ThreadOutbox) -> None:
        self._outbox = outbox

    async def stream_reply(self, *, thread: ThreadKey, deltas: AsyncIterator[str]) -> list[str]:
        with _for(thread):
            return await self._outbox.stream_reply(thread=thread, deltas=deltas)

    async def post_notice(self, *, thread: ThreadKey, text: str) -> None:
        with _for(thread):
            await self._outbox.post_notice(thread=thread, text=text)

    async def post_card(self, *, card: CatchUpCard) -> str:
        with _for(card.thread):
            return await self._outbox.post_card(card=card)

    async def update_card(self, *, card: CatchUpCard, message_id: str) -> None:
        with _for(card.thread):
            await self._outbox.update_card(card=card, message_id=message_id)

    async def find_card(self, *, card: CatchUpCard) -> str | None:
        with _for(card.thread):
            return await self._outbox.find_card(card=card)

    async def post_approval(self, *, card: ApprovalCard) -> str:
        with _for(card.thread):
            return await self._outbox.post_approval(card=card)

    async def update_approval(self, *, card: ApprovalCard, message_id: str) -> None:
        with _for(card.thread):
            await self._outbox.update_approval(card=card, message_id=message_id)

    async def show_status(self, *, thread: ThreadKey, text: str | None) -> None:
        with _for(thread):
            await self._outbox.show_status(thread=thread, text=text)

    async def set_session_status(self, *, thread: ThreadKey, status: SessionStatus, title: str | None = None) -> None:
        with _for(thread):
            await self._outbox.set_session_status(thread=thread, status=status, title=title)

    async def rename_thread(self, *, thread: ThreadKey, title: str) -> None:
        with _for(thread):
            await self._outbox.rename_thread(thread=thread, title=title)
