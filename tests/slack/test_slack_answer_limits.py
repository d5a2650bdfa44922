"""On Slack, an answer that loops is cut: the thread shows it ending with the note, and the log keeps that answer."""

from __future__ import annotations

from pathlib import Path

from agent.runaway import LOOP_NOTE
from tests.fakes.llm import LOOPING_MAX_CHARS, FakeLLM
from tests.fakes.slack import FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows
from tests.slack.conftest import SlackBotFactory
from tests.slack.test_slack_socket_mode import replies_in, settle

PARAGRAPH = "To restart the worker, stop the service, clear the queue and start it again, then check the log. "


async def test_a_looping_answer_is_posted_cut_short_with_the_note_and_logged_so(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply_looping("Here are the steps. ", span=PARAGRAPH)  # the runaway: until the client leaves
    mention = Payloads.mention("how do I restart the worker?")
    async with slack_bot(llm_max_output_tokens=1000) as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await settle(bot)
    request = fake_llm.requests[0]
    assert request.max_tokens == 1000
    await wait_until(lambda: request.client_gone, what="the model's stream closed")
    [answer] = replies_in(fake_slack, mention["ts"])
    assert answer.startswith("Here are the steps. " + PARAGRAPH)
    assert answer.endswith(LOOP_NOTE)
    assert len(answer) < 2_000
    assert request.sent_chars < 10_000 < LOOPING_MAX_CHARS  # the model stopped writing soon after the cut
    [logged] = db_rows(db_path, "SELECT content FROM messages WHERE role = 'assistant'")
    assert logged["content"].endswith(LOOP_NOTE) and len(logged["content"]) < 2_000


async def test_a_capped_persons_question_waits_while_someone_else_writing_after_it_is_answered(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    fake_llm.reply("A first answer that spends Alice's whole allowance for today.")
    mention = Payloads.mention("first question, long enough to cost some tokens by itself")
    async with slack_bot(user_daily_tokens=30) as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await settle(bot)
        await fake_slack.send(
            Payloads.event_body(Payloads.message("what is the secret date?", thread_ts=mention["ts"]))
        )
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 2, what="the daily limit note")
        fake_llm.reply("Hello Bob.")
        bob = Payloads.message("Bob here, hello", user="UBOB", thread_ts=mention["ts"])
        await fake_slack.send(Payloads.event_body(bob))
        await wait_until(lambda: len(replies_in(fake_slack, mention["ts"])) == 3, what="Bob's answer")
        await settle(bot)
    _first, note, answer = replies_in(fake_slack, mention["ts"])
    assert "today's limit of 30 tokens" in note
    assert answer == "Hello Bob."
    assert len(fake_llm.requests) == 2 and "secret date" not in fake_llm.requests[1].prompt_text
