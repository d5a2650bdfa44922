"""The "Where were we?" card: showing it once per orphaning, resolving it once, catching up.

A thread the router finds orphaned gets a card; the first click wins through a conditional UPDATE in SQLite
(``storage/sessions.py``), so double clicks, two users and clicks after further restarts all end in exactly one
outcome. The winner's choice becomes a session (fresh, or seeded with a summary of the log), and the messages
that waited are answered. A failure of any kind reopens the card with a note saying what went wrong.

The flow decides nothing about other threads and starts no turns itself: it asks the router (a
:class:`SessionHost`) for the thread's state, to start or install a session, and to answer what waited.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, Protocol

from agent.llm import LLMError
from agent.summarize import Purpose, Summarizer
from bots.operator import log_context, metrics
from bots.router.forgetting import ErasureFollower, thread_transcript
from bots.router.thread_state import RouterStores, ThreadState, clicked_thread, key_of, thread_key
from bots.seam.messages import Author, CardAction, CardClick, ThreadKey
from bots.seam.ports import CardState, CatchUpCard, ClickResult, ThreadOutbox
from storage.leases import Fence, LeaseLost
from storage.records import CardRecord

log = logging.getLogger(__name__)

SUMMARY_FAILED_NOTE = "I couldn't summarize the thread."
STALE_CARD_NOTE = "That card is no longer active."
INTERRUPTED_NOTE = "I restarted while catching up. Choose again."
CATCH_UP_FAILED_NOTE = "Something went wrong on my side while catching up. Try again, or start fresh."
CATCH_UP_TRIES = 3


class SessionHost(Protocol):
    """What the card flow asks of the router."""

    async def thread_state(self, key: ThreadKey) -> ThreadState: ...

    async def start_session(self, state: ThreadState, *, origin: str) -> None: ...

    async def thread_model(self, state: ThreadState) -> str: ...

    def install_session(
        self,
        state: ThreadState,
        *,
        session_id: int,
        model: str,
        summary: str | None = None,
        through: int | None = None,
    ) -> None: ...

    async def answer_waiting(self, state: ThreadState) -> None: ...

    def outbox(self, key: ThreadKey) -> ThreadOutbox: ...

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]: ...

    async def claim_thread(self, state: ThreadState) -> str | None: ...

    def fence(self, state: ThreadState) -> Fence | None: ...

    async def wake_owner(self, owner: str, *, kind: str, thread_id: int, detail: dict[str, str]) -> None: ...


class CardFlow:
    """Cards and catch-ups for every thread; see the module docstring."""

    def __init__(
        self,
        *,
        stores: RouterStores,
        summarizer: Summarizer,
        follower: ErasureFollower,
        clock: Callable[[], datetime],
        host: SessionHost,
        interrupted: list[CardRecord] | None = None,
    ) -> None:
        self._interrupted = list(interrupted or [])  # left mid catch-up by the last run; shown again on resume
        self._cards = stores.cards
        self._log = stores.log
        self._sessions = stores.sessions
        self._journal = stores.journal
        self._erasures = stores.erasures
        self._trail = stores.trail
        self._usage = stores.usage
        self._summarizer = summarizer
        self._follower = follower
        self._clock = clock
        self._host = host

    async def has_open_card(self, state: ThreadState) -> bool:
        """True when a card already waits in this thread (this process's memory first, then SQLite). Posts nothing.

        A card row read without a message id is one an earlier run recorded and may never have shown: it is
        kept in ``state.card_unshown`` for :meth:`show_recorded_card`, which the caller runs next.
        """
        if state.card_open is None:
            card = await self._cards.open_card_for(thread_id=state.thread_id)
            state.card_open = card is not None
            state.card_unshown = card if card is not None and card.card_message_id is None else None
        return state.card_open

    async def show_recorded_card(self, state: ThreadState) -> None:
        """Make sure a card an earlier run recorded (``has_open_card`` found it without a message id) is seen.

        That run died between recording the card and storing the posted message's id, either before the post
        or after the platform accepted it. The thread is searched for a card message with this card's id
        first (``ThreadOutbox.find_card``), so an accepted post is adopted instead of shown twice; only a card
        not found is posted now, rather than leaving the thread waiting forever. This is the only place a
        thread's history is read for a card: a rare recovery, not the reply path.
        """
        card, state.card_unshown = state.card_unshown, None
        if card is None:
            return
        message_id = await self._find_posted_card(state, card)
        if message_id is None:
            log.info("posting card %s in %s, which an earlier run recorded but never showed", card.id, state.key)
            await self._show_new_card(state, card)
            return
        log.info("card %s in %s was posted by an earlier run (message %s); using it", card.id, state.key, message_id)
        await self._cards.set_message_id(card_id=card.id, card_message_id=message_id)

    async def _find_posted_card(self, state: ThreadState, card: CardRecord) -> str | None:
        view = CatchUpCard(card_id=card.id, thread=state.key, state=CardState.PENDING)
        try:
            return await self._host.outbox(state.key).find_card(card=view)
        except Exception:
            log.warning("could not look for card %s in %s; posting it", card.id, state.key, exc_info=True)
            return None

    async def post_card(self, state: ThreadState) -> None:
        card, created = await self._cards.open_card(
            thread_id=state.thread_id, now=self._clock(), fence=self._host.fence(state)
        )
        state.card_open = True
        if created:
            metrics.card_shown(state.key.platform)
            await self._show_new_card(state, card)

    async def _show_new_card(self, state: ThreadState, card: CardRecord) -> None:
        view = CatchUpCard(card_id=card.id, thread=state.key, state=CardState.PENDING)
        try:
            message_id = await self._host.outbox(state.key).post_card(card=view)
        except Exception:
            log.exception("could not post the card in %s; the next message will try again", state.key)
            await self._cards.discard(card_id=card.id)
            state.card_open = False
            state.inflight.clear()
            return
        await self._cards.set_message_id(card_id=card.id, card_message_id=message_id)

    async def handle_click(self, click: CardClick) -> ClickResult:
        """Resolve a card once, whoever clicks and however often; returns at once, the work runs on.

        The winning click flips the card in SQLite, shows the outcome (no buttons), and leaves the catch-up
        summary and the answers to a background task, so adapters can acknowledge the click within the
        platform's 3 seconds. Losers, stale cards and unknown cards get a note for the clicker alone.
        """
        card = await self._cards.get(card_id=click.card_id)
        key = (
            None if card is None else await clicked_thread(self._log, thread_id=card.thread_id, clicked_in=click.thread)
        )
        if card is None or key is None:
            return ClickResult(private_note=STALE_CARD_NOTE)
        # Ownership first: a worker taking the thread now reopens a card left mid catch-up, not this click's.
        owner = await self._host.claim_thread(await self._host.thread_state(key))
        target = CardState.CATCHING_UP if click.action is CardAction.CATCH_UP else CardState.FRESH
        won = await self._cards.claim(
            card_id=card.id,
            state=target.value,
            by_id=click.user.id,
            by_name=click.user.display_name,
            now=self._clock(),
        )
        if not won:
            return ClickResult(private_note=await self._already_chosen_note(card.id))
        await self.show_card(card, CatchUpCard(card.id, key, target, chosen_by=click.user.display_name))
        if owner is None:
            self._host.spawn(self._resolve_card(card, key, click))
        else:  # the thread's owner does the work
            detail = {"card_id": str(card.id), "action": click.action.value}
            detail |= {"user_id": click.user.id, "user_name": click.user.display_name}
            await self._host.wake_owner(owner, kind="card", thread_id=card.thread_id, detail=detail)
        return ClickResult()

    async def resume_for_approval(self, thread_id: int, key: ThreadKey, user: Author) -> None:
        """A click decided an approval no live turn waited on: resume the thread's turn as Catch me up would.

        The click counts as choosing Catch me up: the thread's open card (or one recorded now, never shown) is
        resolved with it, so no "Where were we?" card is needed; a thread with a live session just answers
        what waits, its interrupted turn resumed from the journal.

        Under the thread's lock, as the start-up pass (``ThreadRouter.resume``) decides the thread under it: that pass
        either ran first, or finds the card this click opens and posts none of its own.
        """
        state = await self._host.thread_state(key)
        async with state.lock:
            if state.session is None:
                # The owner-to-be resumes it (or, owned, its owner: the card's wake-up).
                owner = await self._host.claim_thread(state)
                fence = None if owner is not None else self._host.fence(state)
                card, _ = await self._cards.open_card(thread_id=thread_id, now=self._clock(), fence=fence)
                state.card_open = True
                await self.handle_click(CardClick(card_id=card.id, action=CardAction.CATCH_UP, user=user, thread=key))
                return
        await self._host.answer_waiting(state)

    async def resolve_won_elsewhere(self, click: CardClick) -> None:
        """A click another worker received and won, in a thread this worker owns: do what it chose."""
        card = await self._cards.get(card_id=click.card_id)
        if card is None or card.state == "pending":
            return
        key = await thread_key(self._log, thread_id=card.thread_id)  # the receiving worker checked the place
        if key is None:
            return
        owner = await self._host.claim_thread(await self._host.thread_state(key))
        if owner is None:
            self._host.spawn(self._resolve_card(card, key, click))
        else:  # the thread changed hands since: pass it on
            detail = {"card_id": str(card.id), "action": click.action.value}
            detail |= {"user_id": click.user.id, "user_name": click.user.display_name}
            await self._host.wake_owner(owner, kind="card", thread_id=card.thread_id, detail=detail)

    async def show_interrupted(self, platform: str) -> None:
        """Cards the last run left mid catch-up, in ``platform``'s threads, get their buttons back (once)."""
        for card in list(self._interrupted):
            thread = await self._log.thread(thread_id=card.thread_id)
            if thread is None or thread.platform != platform:
                continue
            self._interrupted.remove(card)
            await self.show_card(card, CatchUpCard(card.id, key_of(thread), CardState.PENDING, note=INTERRUPTED_NOTE))

    async def reopen_interrupted(self, state: ThreadState) -> None:
        """A thread this worker just took: a card its last owner left mid catch-up (it died) is clickable again."""
        state.card_open = None
        card = await self._cards.open_card_for(thread_id=state.thread_id)
        if card is None or card.state != "catching_up":
            return
        await self._cards.reopen(card_id=card.id)
        await self.show_card(card, CatchUpCard(card.id, state.key, CardState.PENDING, note=INTERRUPTED_NOTE))

    async def _resolve_card(self, card: CardRecord, key: ThreadKey, click: CardClick) -> None:
        """Start the chosen session, mark the card done, answer what waited. Any failure reopens the card.

        The state is pinned throughout, so ``MAX_LIVE_SESSIONS`` cannot evict the session between its start
        and the answer to what waited.
        """
        log_context.bind(thread=key, event=f"card:{card.id}")
        state = await self._host.thread_state(key)
        state.pinned += 1
        started = time.monotonic()
        try:
            target = await self._start_chosen_session(state, card, key, click)
            if target is None:
                return
            metrics.card_resolved(target.value, since=started)
            await self._cards.finish(
                card_id=card.id, state=target.value, now=self._clock(), fence=self._host.fence(state)
            )
            state.card_open = False
            await self.show_card(card, CatchUpCard(card.id, key, target, chosen_by=click.user.display_name))
            await self._host.answer_waiting(state)
        except LeaseLost as exc:
            log.warning("%s: card %s was resolved by another worker's lease (%s)", key, card.id, exc)
        finally:
            state.pinned -= 1

    async def _start_chosen_session(
        self, state: ThreadState, card: CardRecord, key: ThreadKey, click: CardClick
    ) -> CardState | None:
        """The session the click asked for, or None (and the card open again) when it could not be made."""
        try:
            if click.action is CardAction.FRESH:
                if self._journal is not None:  # the interrupted turn stays in the log, and is not resumed
                    await self._journal.close_turn(thread_id=state.thread_id, now=self._clock())
                await self._host.start_session(state, origin="fresh")
                return CardState.FRESH
            self._usage.begin(thread_id=state.thread_id, user_id=click.user.id)
            try:
                await self._start_caught_up_session(state)
            finally:
                self._usage.settle()
            return CardState.CAUGHT_UP
        except Exception as exc:
            if isinstance(exc, LLMError):
                log.warning("catch-up summary for %s failed: %s", key, exc)
                note = f"{SUMMARY_FAILED_NOTE} {exc.user_message}"
            else:
                log.error("starting the chosen session in %s failed; the card is open again", key, exc_info=exc)
                note = CATCH_UP_FAILED_NOTE
            try:
                await self._cards.reopen(card_id=card.id)
            except Exception:
                log.exception("could not reopen card %s; the next start reopens it", card.id)
            await self.show_card(card, CatchUpCard(card.id, key, CardState.PENDING, note=note))
            return None

    async def _already_chosen_note(self, card_id: int) -> str:
        card = await self._cards.get(card_id=card_id)
        if card is None or card.state == "pending":
            return STALE_CARD_NOTE
        who = card.resolved_by_name or "Someone"
        choice = "to start fresh" if card.state == "fresh" else "to catch up"
        return f"{who} already chose {choice}."

    async def show_card(self, card: CardRecord, view: CatchUpCard) -> None:
        if card.card_message_id is None:
            return
        try:
            await self._host.outbox(view.thread).update_card(card=view, message_id=card.card_message_id)
        except Exception:
            log.exception("could not update card %s in %s", card.id, view.thread)

    # -- catching up --------------------------------------------------------------------------------------

    async def _start_caught_up_session(self, state: ThreadState) -> None:
        """Summarize what the thread said since the last summary (or all of it) and seed a session with it.

        The summary is stored only if nothing in the thread was forgotten while it was written (the erasure
        journal says); otherwise it may hold deleted text, and it is written again from the log.
        """
        for _ in range(CATCH_UP_TRIES):
            seen = await self._erasures.latest_id(thread_id=state.thread_id)
            previous = await self._sessions.latest_summary(thread_id=state.thread_id)
            after = previous.through_message_id if previous else 0
            messages, lines = await thread_transcript(
                log=self._log, trail=self._trail, thread_id=state.thread_id, after_id=after
            )
            if not messages and previous is None:
                await self._host.start_session(state, origin="catch_up")
                return
            if messages:
                summary = await state.catch_up.run(
                    self._summarizer.summarize(
                        lines=lines,
                        purpose=Purpose.CATCH_UP,
                        previous=previous.text if previous else None,
                    )
                )
                if summary is None:
                    log.info("a message in %s was forgotten while it was summarized; summarizing again", state.key)
                    continue
                through = messages[-1].id
            else:
                assert previous is not None
                summary, through = previous.text, after
            model = await self._host.thread_model(state)  # the thread's own choice survives a catch-up
            session_id = await self._sessions.record_with_summary(
                thread_id=state.thread_id,
                model=model,
                started_utc=self._clock(),
                summary=summary,
                summary_through_message_id=through,
                erasures_seen=seen,
            )
            if session_id is not None:
                await self._follower.catch_up()
                self._host.install_session(state, session_id=session_id, model=model, summary=summary, through=through)
                return
            log.info("a message in %s was forgotten while it was summarized; summarizing again", state.key)
        raise LLMError(
            "messages kept being deleted while the thread was summarized",
            user_message="Messages kept changing while I caught up. Try again in a moment.",
        )
