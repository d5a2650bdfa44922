"""The core stories end to end on each backend: the real router, real litellm, the fake model, the bundle."""

from __future__ import annotations

from bots.seam.messages import ApprovalAction, ApprovalClick, CardAction, MessageDeletion, utc_now
from bots.seam.ports import ApprovalState, CardState
from bots.tools.approvals import EXPIRED_NOTE
from storage.backends import open_storage
from storage.records import Grouping
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM
from tests.router_harness import BOB, running_router, thread_key


async def test_restart_then_catch_me_up_answers_the_pending_question(
    make_settings: MakeSettings, fake_llm: FakeLLM, database_url: str
) -> None:
    settings = make_settings(database_url=database_url)
    async with running_router(settings) as bot:
        fake_llm.reply("Noted: Postgres for the queue.")
        await bot.say("We chose Postgres for the queue because of SKIP LOCKED.")
    async with running_router(settings) as bot:
        await bot.say("Remind me what we chose?")
        await bot.say("Anyone?", author=BOB)
        assert len(bot.outbox.cards_posted) == 1 and bot.outbox.replies == []
        fake_llm.reply("SUMMARY: the team chose Postgres for the queue (SKIP LOCKED).")
        fake_llm.reply("You chose Postgres.")
        await bot.click(CardAction.CATCH_UP, user=BOB)
        assert bot.outbox.replies_in(thread_key()) == ["You chose Postgres."]
        assert bot.outbox.card_updates[-1][1].state is CardState.CAUGHT_UP
    async with open_storage(database_url) as storage:
        [thread] = await storage.log.find_threads(name=thread_key().thread)
        messages = await storage.log.all_messages(thread_id=thread.id)
        assert [(m.role, m.content, m.reply_state) for m in messages] == [
            ("user", "We chose Postgres for the queue because of SKIP LOCKED.", "answered"),
            ("assistant", "Noted: Postgres for the queue.", None),
            ("user", "Remind me what we chose?", "answered"),
            ("user", "Anyone?", "answered"),
            ("assistant", "You chose Postgres.", None),
        ]
        summary = await storage.sessions.latest_summary(thread_id=thread.id)
        assert summary is not None and summary.text.startswith("SUMMARY:")
        assert await storage.cards.open_card_for(thread_id=thread.id) is None
        assert [(t.answers, t.summaries) for t in await storage.usage.totals(by=Grouping.DAY)] == [(2, 1)]
        assert await storage.probe.waiting_threads() == 0


async def test_a_deleted_message_is_blanked_and_never_reaches_the_next_summary(
    make_settings: MakeSettings, fake_llm: FakeLLM, database_url: str
) -> None:
    settings = make_settings(database_url=database_url)
    async with running_router(settings) as bot:
        fake_llm.reply("Noted.")
        fake_llm.reply("Noted too.")
        secret = await bot.say("The door code is 4417.")
        await bot.say("Lunch at noon.")
        await bot.router.handle_deletion(MessageDeletion(thread=thread_key(), message_id=secret.message_id))
    async with running_router(settings) as bot:
        await bot.say("What did I say?")
        fake_llm.reply("SUMMARY: lunch at noon.")
        fake_llm.reply("Lunch at noon.")
        await bot.click(CardAction.CATCH_UP)
    assert all("4417" not in r.prompt_text for r in fake_llm.requests[2:])
    async with open_storage(database_url) as storage:
        [thread] = await storage.log.find_threads(name=thread_key().thread)
        contents = [m.content for m in await storage.log.all_messages(thread_id=thread.id)]
        assert "The door code is 4417." not in contents and "" in contents
        assert [e.kind for e in await storage.erasures.since(after_id=0)] == ["deleted"]


async def test_a_click_on_an_approval_nothing_waits_for_expires_it_and_nothing_runs(
    make_settings: MakeSettings, fake_llm: FakeLLM, database_url: str
) -> None:
    """One worker: an approval left pending by a turn that ended (or a run that died) is never "allowed"."""
    async with running_router(make_settings(database_url=database_url)) as bot:
        await bot.say("hello")
        async with open_storage(database_url) as storage:
            [thread] = await storage.log.find_threads(name=thread_key().thread)
            approval_id = await storage.approvals.open(
                thread_id=thread.id, tool="files__write", arguments_preview="{}", now=utc_now()
            )
            await storage.approvals.set_message_id(approval_id=approval_id, card_message_id="an-old-card")
        click = ApprovalClick(approval_id, ApprovalAction.ALLOW, BOB, thread=thread_key())
        result = await bot.router.handle_approval_click(click)
        assert result.private_note == EXPIRED_NOTE
        [(message_id, card)] = bot.outbox.approval_updates
        assert (message_id, card.state) == ("an-old-card", ApprovalState.EXPIRED)
    async with open_storage(database_url) as storage:
        record = await storage.approvals.get(approval_id=approval_id)
        assert record is not None and (record.state, record.decided_by_name) == ("expired", None)
