"""How a reply streams on Slack: what the thread shows while it streams, after it ends, and when it breaks."""

from __future__ import annotations

from bots.replies.reply_stream import INTERRUPTED
from bots.replies.streaming import Snapshot
from bots.slack.outbox import message_chunks
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.slack.conftest import SlackBotFactory
from tests.slack.test_slack_socket_mode import replies_in, settle


async def test_a_model_stream_that_breaks_shows_everything_received_marked_interrupted(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    # The stream breaks well within the 1 s throttle: only the first snapshot was shown when it did.
    fake_llm.reply("This sentence will be cut off somewhere in the middle of it. " * 4)
    fake_llm.chunk_chars, fake_llm.chunk_delay_s = 10, 0.03
    fake_llm.break_stream(after_chars=120)
    mention = Payloads.mention("tell me")
    async with slack_bot() as bot:
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(fake_slack.posts(thread_ts=mention["ts"])) == 2, timeout=10)
        await settle(bot)
    partial, note = replies_in(fake_slack, mention["ts"])
    cut_short = ("This sentence will be cut off somewhere in the middle of it. " * 2)[:120].rstrip()
    assert [partial] == message_chunks(Snapshot(cut_short + INTERRUPTED))
    assert "model" in note.lower() and len(note) < 120
