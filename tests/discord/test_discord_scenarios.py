"""Discord user stories: the real discord.py client, the loopback Discord, a real SQLite log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bots.app import open_router
from bots.config import ConfigError
from bots.discord import DiscordAdapter
from tests.conftest import MakeSettings
from tests.discord.conftest import DiscordBotFactory, button, buttons, open_thread, settle
from tests.fakes.discord import ALICE, BOB, BOT_ID, FakeDiscord, user
from tests.fakes.llm import FakeLLM
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows


async def test_follow_ups_in_the_thread_need_no_mention_and_everyone_is_logged(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply("First answer.")
    fake_llm.reply("Second answer.")
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "plan the launch")
        await fake_discord.user_says("and the budget?", channel_id=thread, author=BOB)
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 2)
        await fake_discord.user_says("(a bot says hi)", channel_id=thread, author=user("7", "OtherBot", bot=True))
        await fake_discord.user_says("no mention, not a thread of ours", author=BOB)
        await settle(bot)
    assert fake_discord.texts_in(thread) == ["First answer.", "Second answer."]
    assert fake_llm.requests[-1].body["messages"][-1]["content"] == "Bob: and the budget?"
    rows = db_rows(db_path, "SELECT role, author_name, content FROM messages ORDER BY id")
    assert [tuple(r) for r in rows] == [
        ("user", "Alice", "plan the launch"),
        ("assistant", "threadkeeper", "First answer."),
        ("user", "Bob", "and the budget?"),
        ("assistant", "threadkeeper", "Second answer."),
    ]
    assert fake_discord.calls_to("POST", rf"/channels/{thread}/typing")


async def test_a_mention_in_an_existing_thread_adopts_it(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM
) -> None:
    fake_discord.existing_thread("555", "people's thread")
    async with discord_bot() as bot:
        await fake_discord.user_says("nobody asked the bot yet", channel_id="555")
        await settle(bot)
        assert fake_discord.texts_in("555") == []
        await fake_discord.user_says("what do you think?", channel_id="555", mention_bot=True)
        await wait_until(lambda: len(fake_discord.texts_in("555")) == 1)
        await fake_discord.user_says("and now without a mention", channel_id="555")
        await wait_until(lambda: len(fake_discord.texts_in("555")) == 2)


async def test_restart_then_catch_me_up_answers_the_waiting_message(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "we ship on the 14th")
    async with discord_bot() as bot:
        await fake_discord.user_says("when do we ship?", channel_id=thread, author=BOB)
        await wait_until(lambda: len(fake_discord.cards_in(thread)) == 1)
        await fake_discord.user_says("hello?", channel_id=thread)
        await settle(bot)
        assert len(fake_discord.cards_in(thread)) == 1
        card = fake_discord.cards_in(thread)[0]
        assert [(b["label"], b["style"]) for b in buttons(card)] == [("Catch me up", 1), ("Start fresh", 2)]
        assert "restarted" in card["content"]
        fake_llm.reply("SUMMARY: shipping on the 14th.")
        fake_llm.reply("On the 14th.")
        interaction = await fake_discord.click(button(card, "catch_up"), message=card, who=BOB)
        await wait_until(lambda: "On the 14th." in fake_discord.texts_in(thread))
        await settle(bot)
    assert fake_discord.callbacks(interaction)[0].json["type"] == 6  # deferred within 3 s
    summary = next(r for r in fake_llm.requests if not r.stream)
    assert '<message from="Alice" role="user">we ship on the 14th' in summary.prompt_text
    assert [m["content"] for m in fake_llm.requests[-1].body["messages"][1:]] == [
        "Bob: when do we ship?",
        "Alice: hello?",
    ]
    card = fake_discord.messages[card["id"]]
    assert buttons(card) == [] and "Caught up" in card["content"] and "Bob" in card["content"]
    assert tuple(db_rows(db_path, "SELECT state, resolved_by_name FROM cards")[0]) == ("caught_up", "Bob")


async def test_restart_then_start_fresh_carries_none_of_the_earlier_text(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM
) -> None:
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "the password hint is PELICAN")
    async with discord_bot() as bot:
        await fake_discord.user_says("different topic", channel_id=thread)
        await wait_until(lambda: len(fake_discord.cards_in(thread)) == 1)
        card = fake_discord.cards_in(thread)[0]
        fake_llm.reply("Fresh start.")
        await fake_discord.click(button(card, "fresh"), message=card)
        await wait_until(lambda: "Fresh start." in fake_discord.texts_in(thread))
        await settle(bot)
    assert "PELICAN" not in fake_llm.requests[-1].prompt_text
    assert "Started fresh" in fake_discord.messages[card["id"]]["content"]


async def test_a_card_still_works_after_a_second_restart_and_clicks_race_to_one_outcome(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "topic one")
    async with discord_bot() as bot:
        await fake_discord.user_says("still there?", channel_id=thread)
        await wait_until(lambda: len(fake_discord.cards_in(thread)) == 1)
        await settle(bot)
    async with discord_bot() as bot:
        card = fake_discord.cards_in(thread)[0]
        clicks = await asyncio.gather(
            fake_discord.click(button(card, "catch_up"), message=card, who=ALICE),
            fake_discord.click(button(card, "fresh"), message=card, who=BOB),
            fake_discord.click(button(card, "fresh"), message=card, who=BOB),
        )
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 2)
        await wait_until(lambda: len(fake_discord.followups()) == 2)
        await settle(bot)
    assert all(fake_discord.callbacks(i) for i in clicks)
    notes = [c.json for c in fake_discord.followups()]
    assert all("already chose" in n["content"] and n["flags"] & 64 for n in notes)  # ephemeral
    assert len(db_rows(db_path, "SELECT 1 FROM sessions")) == 2


async def test_a_5000_character_reply_with_code_is_split_and_edits_are_throttled(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM
) -> None:
    prose = "\n\n".join(f"Step {i}. " + "Check the config and run the tests again. " * 8 for i in range(6))
    code = "```bash\n" + "\n".join(f"echo step-{i} && make target-{i}" for i in range(100)) + "\n```"
    reply = prose + "\n\n" + code + "\n\nThat's it."
    assert len(reply) > 5000
    fake_llm.reply(reply)
    fake_llm.chunk_chars = 40
    fake_llm.chunk_delay_s = 0.02
    async with discord_bot() as bot:
        message = await fake_discord.user_says("explain the build", mention_bot=True)
        thread = str(message["id"])
        await wait_until(lambda: any(t.endswith("That's it.") for t in fake_discord.texts_in(thread)), timeout=15)
        await settle(bot)
    texts = fake_discord.texts_in(thread)
    assert len(texts) >= 3 and all(len(t) <= 2000 for t in texts)
    assert all(sum(1 for line in t.split("\n") if line.startswith("```")) % 2 == 0 for t in texts)
    assert "".join(texts).count("echo step-99") == 1
    edits = fake_discord.calls_to("PATCH", rf"/channels/{thread}/messages/\d+")
    posts = fake_discord.calls_to("POST", rf"/channels/{thread}/messages")
    span = max(c.at for c in edits + posts) - min(c.at for c in edits + posts)
    assert len(edits) <= span / 1.0 + len(posts) + 1


async def test_edits_and_deletions_reach_the_log(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "root")
        typo = await fake_discord.user_says("teh plan", channel_id=thread)
        secret = await fake_discord.user_says("my token is abc123", channel_id=thread)
        await settle(bot)
        await fake_discord.user_edits(typo, "the plan")
        await fake_discord.user_deletes(secret)
        await settle(bot)
    rows = {r["platform_message_id"]: r for r in db_rows(db_path, "SELECT * FROM messages")}
    assert rows[typo["id"]]["content"] == "the plan" and rows[typo["id"]]["edited_utc"]
    assert rows[secret["id"]]["content"] == "" and rows[secret["id"]]["deleted_utc"]


async def test_allowlists_ignore_others_in_channels_and_tell_them_in_dms(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot(discord_allowed_users=frozenset({ALICE["id"]})) as bot:
        message = await fake_discord.user_says("let me in", mention_bot=True, author=BOB)
        await fake_discord.user_says("hi", channel_id="4242", author=BOB, guild=False)
        await wait_until(lambda: len(fake_discord.sent_in("4242")) == 1)
        await settle(bot)
    assert "not available to you" in fake_discord.sent_in("4242")[0]["content"]
    assert message["id"] not in fake_discord.threads
    assert db_rows(db_path, "SELECT 1 FROM messages") == [] and fake_llm.requests == []


async def test_a_dm_is_a_conversation_of_its_own(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM
) -> None:
    fake_llm.reply("Hi in DM.")
    fake_llm.reply("Still in DM.")
    async with discord_bot() as bot:
        await fake_discord.user_says("hello bot", channel_id="7777", guild=False)
        await wait_until(lambda: len(fake_discord.sent_in("7777")) == 1)
        await settle(bot)
        await fake_discord.user_says("second", channel_id="7777", guild=False)
        await wait_until(lambda: len(fake_discord.sent_in("7777")) == 2)
    assert [m["content"] for m in fake_discord.sent_in("7777")] == ["Hi in DM.", "Still in DM."]
    assert "Alice: hello bot" in fake_llm.requests[-1].prompt_text


async def test_small_text_attachments_are_inlined_and_others_noted(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    attachments = [
        fake_discord.attachment("notes.txt"),
        fake_discord.attachment("photo.png", content_type="image/png", size=50_000),
    ]
    async with discord_bot() as bot:
        message = await fake_discord.user_says("see attached", mention_bot=True, attachments=attachments)
        await wait_until(lambda: len(fake_discord.texts_in(message["id"])) == 1)
        await settle(bot)
    prompt = fake_llm.requests[-1].body["messages"][-1]["content"]
    assert "[attachment: notes.txt (text/plain, 21 bytes)]\ncontents of notes.txt" in prompt  # the size read
    assert "[attachment: photo.png (image/png, 50000 bytes), not read: this model cannot see images]" in prompt
    assert "photo.png" in db_rows(db_path, "SELECT attachments_json FROM messages")[0][0]


async def test_a_model_failure_is_a_short_friendly_message_in_the_thread(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM
) -> None:
    fake_llm.fail_always(status=500)
    async with discord_bot() as bot:
        message = await fake_discord.user_says("anyone home?", mention_bot=True)
        await wait_until(lambda: len(fake_discord.texts_in(message["id"])) == 1, timeout=10)
        await settle(bot)
    assert fake_discord.texts_in(message["id"]) == ["I couldn't reach the model. Try again in a minute."]


async def test_a_missing_message_content_intent_is_a_clear_start_up_error(
    make_settings: MakeSettings, fake_discord: FakeDiscord
) -> None:
    fake_discord.deny_message_content = True
    settings = make_settings(
        discord_token="t0ken-value",
        discord_api_base=fake_discord.api_base,
        discord_gateway_url=fake_discord.gateway_url,
    )
    async with open_router(settings) as router:
        with pytest.raises(ConfigError, match="MESSAGE CONTENT INTENT"):
            await DiscordAdapter(settings=settings, router=router, guild_ready_timeout=0.05).start()
    assert BOT_ID


async def test_the_role_and_channel_allowlists_let_only_members_in(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_discord.roles[ALICE["id"]] = ["600"]
    async with discord_bot(
        discord_allowed_roles=frozenset({"600"}), discord_allowed_channels=frozenset({"900000000000000002"})
    ) as bot:
        denied = await fake_discord.user_says("no role", mention_bot=True, author=BOB)
        allowed = await fake_discord.user_says("has the role", mention_bot=True)
        await wait_until(lambda: len(fake_discord.texts_in(allowed["id"])) == 1)
        await settle(bot)
    assert denied["id"] not in fake_discord.threads
    assert [r["content"] for r in db_rows(db_path, "SELECT content FROM messages WHERE role = 'user'")] == [
        "has the role"
    ]


async def test_a_channel_outside_the_allowlist_is_ignored(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot(discord_allowed_channels=frozenset({"123"})) as bot:
        message = await fake_discord.user_says("hello?", mention_bot=True)
        await settle(bot)
    assert message["id"] not in fake_discord.threads and fake_llm.requests == []


async def test_messages_written_while_the_bot_was_down_are_logged_and_answered_after_the_card(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "the deploy is on Monday")
    fake_discord.wrote_while_bot_was_away("did the deploy move?", channel_id=thread, author=BOB)
    fake_discord.wrote_while_bot_was_away("hello? bot?", channel_id=thread)
    async with discord_bot() as bot:
        await fake_discord.user_says("are you back?", channel_id=thread)
        await wait_until(lambda: len(fake_discord.cards_in(thread)) == 1)
        card = fake_discord.cards_in(thread)[0]
        fake_llm.reply("Yes: still Monday.")
        await fake_discord.click(button(card, "fresh"), message=card)
        await wait_until(lambda: "Yes: still Monday." in fake_discord.texts_in(thread))
        await settle(bot)
    users = db_rows(db_path, "SELECT content, reply_state FROM messages WHERE role = 'user' ORDER BY id")
    assert [tuple(r) for r in users] == [
        ("the deploy is on Monday", "answered"),
        ("did the deploy move?", "answered"),
        ("hello? bot?", "answered"),
        ("are you back?", "answered"),
    ]
    assert [m["content"] for m in fake_llm.requests[-1].body["messages"][1:]] == [
        "Bob: did the deploy move?",
        "Alice: hello? bot?",
        "Alice: are you back?",
    ]
