"""Tool approvals and progress on Slack: the real slack-bolt app in Socket Mode, the loopback Slack, real SQLite.

The tests stand in for the router's approval flow (``tests/approval_rows.py`` opens the row and posts the
card through the real outbox); every click goes through bolt's listeners and middleware to the real router.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bots.replies.render import tool_status
from bots.seam.messages import ApprovalAction, ThreadKey
from bots.seam.ports import approval_button_id, arguments_button_id
from tests.approval_rows import approval_row, post_approval
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import TEAM, FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.slack.conftest import SlackBot, SlackBotFactory
from tests.slack.test_slack_socket_mode import replies_in, settle


async def open_thread(fake: FakeSlack, bot: SlackBot, text: str) -> str:
    mention = Payloads.mention(text)
    await fake.send(Payloads.event_body(mention))
    await wait_until(lambda: len(replies_in(fake, mention["ts"])) == 1, timeout=30)  # a first answer, loaded machine
    await settle(bot)
    return str(mention["ts"])


def key(thread_ts: str) -> ThreadKey:
    return ThreadKey("slack", TEAM, "C1", thread_ts)


def blocks_of(fake: FakeSlack, ts: str) -> list[dict[str, Any]]:
    return fake.current_blocks(ts)


def click(approval_id: int, action: ApprovalAction, *, user: str, card_ts: str, thread_ts: str) -> dict[str, Any]:
    value = approval_button_id(approval_id, action)
    return Payloads.click(value, user=user, message_ts=card_ts, thread_ts=thread_ts)


def ephemeral_texts(fake: FakeSlack) -> list[str]:
    return [str(c.params.get("text")) for c in fake.calls_to("chat.postEphemeral")]


async def test_a_click_from_outside_the_allowlist_is_refused_and_the_call_still_waits(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with slack_bot(slack_allowed_users=frozenset({"UALICE"})) as bot:
        thread = await open_thread(fake_slack, bot, "tidy the notes")
        approval_id, card_ts = await post_approval(db_path, bot.adapter.outbox, key(thread))
        await fake_slack.send(
            click(approval_id, ApprovalAction.ALLOW, user="UBOB", card_ts=card_ts, thread_ts=thread),
            kind="interactive",
        )
        await wait_until(lambda: len(ephemeral_texts(fake_slack)) == 1)
        await settle(bot)
    assert "not available to you" in ephemeral_texts(fake_slack)[0]
    assert approval_row(db_path, approval_id) == ("pending", None)
    assert any(b["type"] == "actions" for b in blocks_of(fake_slack, card_ts))


async def test_an_approval_button_pressed_in_another_thread_is_refused(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with slack_bot() as bot:
        thread = await open_thread(fake_slack, bot, "tidy the notes")
        other = await open_thread(fake_slack, bot, "lunch plans")
        approval_id, card_ts = await post_approval(db_path, bot.adapter.outbox, key(thread))
        await fake_slack.send(
            click(approval_id, ApprovalAction.ALLOW, user="UALICE", card_ts=card_ts, thread_ts=other),
            kind="interactive",
        )
        await wait_until(lambda: len(ephemeral_texts(fake_slack)) == 1)
        await settle(bot)
    assert ephemeral_texts(fake_slack) == ["That request is no longer active."]
    assert approval_row(db_path, approval_id) == ("pending", None)


async def test_in_a_dm_the_assistant_status_shows_while_the_model_thinks_and_a_tool_runs_and_is_cleared(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    dm = Payloads.dm("read the notes")
    thread, where = str(dm["ts"]), ThreadKey("slack", TEAM, "D1", str(dm["ts"]))
    async with slack_bot() as bot:
        await bot.adapter.outbox.show_status(thread=where, text=tool_status("files__read_file"))
        assert fake_slack.calls_to("assistant.threads.setStatus") == []  # nothing streams: nothing to mark
        fake_llm.reply("Let me look. It says ship on Friday.")
        fake_llm.chunk_chars = 13
        resume = fake_llm.pause_after(13)
        await fake_slack.send(Payloads.event_body(dm))
        await wait_until(
            lambda: bool(replies_in(fake_slack, thread)) and "Let me look." in replies_in(fake_slack, thread)[-1]
        )
        await bot.adapter.outbox.show_status(thread=where, text=tool_status("files__read_file"))
        await bot.adapter.outbox.show_status(thread=where, text=None)
        resume.set()
        await wait_until(lambda: "Friday" in replies_in(fake_slack, thread)[-1])
        await settle(bot)
    calls = fake_slack.calls_to("assistant.threads.setStatus")
    assert [(c.params["channel_id"], c.params["thread_ts"], c.params["status"]) for c in calls] == [
        ("D1", thread, "is thinking…"),
        ("D1", thread, ""),  # the answer started
        ("D1", thread, "Running files__read_file…"),
        ("D1", thread, ""),
    ]
    assert calls[0].params["loading_messages"] and "loading_messages" not in calls[1].params
    assert replies_in(fake_slack, thread)[-1] == "Let me look. It says ship on Friday."
    assert not any("Running" in str(c.params.get("text")) for c in fake_slack.calls_to("chat.update"))


async def test_a_refused_assistant_status_falls_back_to_a_line_in_the_reply_asked_once_per_workspace(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    fake_slack.set_status_error = "not_allowed"
    async with slack_bot() as bot:
        thread = await open_thread(fake_slack, bot, "read the notes")
        fake_llm.reply("Let me look. It says ship on Friday.")
        fake_llm.chunk_chars = 13
        resume = fake_llm.pause_after(13)
        await fake_slack.send(Payloads.event_body(Payloads.message("what do they say?", thread_ts=thread)))
        await wait_until(lambda: "Let me look." in replies_in(fake_slack, thread)[-1])
        reply_ts = fake_slack.posts(thread_ts=thread)[-1].params["_ts"]
        await bot.adapter.outbox.show_status(thread=key(thread), text=tool_status("files__read_file"))
        await wait_until(lambda: fake_slack.final_text(reply_ts).endswith("_Running files__read_file…_"))
        await bot.adapter.outbox.show_status(thread=key(thread), text=tool_status("files__list"))
        await wait_until(lambda: fake_slack.final_text(reply_ts).endswith("_Running files__list…_"))
        resume.set()
        await wait_until(lambda: "Friday" in fake_slack.final_text(reply_ts))
        await settle(bot)
    assert len(fake_slack.calls_to("assistant.threads.setStatus")) == 1
    assert fake_slack.final_text(reply_ts) == "Let me look. It says ship on Friday."
    assert any(
        c.params.get("text") == "Let me look.\n\n_Running files__read_file…_"
        for c in fake_slack.calls_to("chat.update")
    )


HOSTILE = json.dumps({f"k{i}\n<!here> *bold* `": "```\n<@UALICE> & <https://x|y>" for i in range(1000)})


def show_all(approval_id: int, *, user: str, card_ts: str, thread_ts: str) -> dict[str, Any]:
    return Payloads.click(arguments_button_id(approval_id), user=user, message_ts=card_ts, thread_ts=thread_ts)


async def test_a_thousand_hostile_keys_fit_the_slack_card_forge_nothing_and_show_all_has_them_all(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with slack_bot() as bot:
        thread = await open_thread(fake_slack, bot, "tidy the notes")
        approval_id, card_ts = await post_approval(db_path, bot.adapter.outbox, key(thread), arguments=HOSTILE)
        await fake_slack.send(show_all(approval_id, user="UBOB", card_ts=card_ts, thread_ts=thread), kind="interactive")
        await wait_until(lambda: bool(fake_slack.ephemerals(user="UBOB")))
        await settle(bot)
    blocks = blocks_of(fake_slack, card_ts)
    code = blocks[1]["text"]["text"]
    assert len(blocks) <= 50 and len(code) <= 3000 and code.startswith("```") and code.endswith("```")
    assert code.count("```") == 2 and "<" not in code and ">" not in code.replace("&gt;", "")  # no mention, no link
    lines = code[3:-3].split("\n")
    hidden = 1000 - (len(lines) - 1)
    assert lines[-1] == f"… {hidden:,} more arguments are not shown here; Show all has them." and hidden < 1000
    assert lines[0].startswith('"k0\\n&lt;!here&gt; *bold* `": "`\u200b`\u200b`\\n&lt;@UALICE&gt; &amp; &lt;htt')
    assert all(line.startswith('"k') and line.endswith(" chars)") for line in lines[:-1])  # one line per key
    [actions] = [b for b in blocks if b["type"] == "actions"]
    assert [e["text"]["text"] for e in actions["elements"]] == ["Allow", "Deny", "Show all"]
    assert actions["elements"][2]["value"] == f"tk-args:{approval_id}:show_all"
    [reply] = fake_slack.ephemerals(user="UBOB")
    assert reply["thread_ts"] == thread and len(reply["blocks"]) <= 50
    sections = [b["text"]["text"] for b in reply["blocks"][1:]]
    assert all(len(s) <= 3000 and s.startswith("```") and s.endswith("```") for s in sections)
    full = "".join(s[3:-3] for s in sections).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert json.loads(full.replace("\u200b", "")) == json.loads(HOSTILE)


async def test_show_all_pressed_in_another_thread_shows_nothing(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with slack_bot() as bot:
        thread = await open_thread(fake_slack, bot, "tidy the notes")
        other = await open_thread(fake_slack, bot, "lunch plans")
        approval_id, card_ts = await post_approval(db_path, bot.adapter.outbox, key(thread), arguments=HOSTILE)
        await fake_slack.send(show_all(approval_id, user="UBOB", card_ts=card_ts, thread_ts=other), kind="interactive")
        await wait_until(lambda: bool(fake_slack.ephemerals(user="UBOB")))
        await settle(bot)
    assert fake_slack.ephemerals(user="UBOB") == [
        {"channel": "C1", "user": "UBOB", "text": "That request is no longer active.", "thread_ts": other}
    ]
