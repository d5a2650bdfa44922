"""Discord stories at the edges: who may click and DM, what is not an edit, and what Discord may refuse."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import discord
import pytest

from tests.discord.conftest import DiscordBotFactory, button, open_thread, settle
from tests.fakes.discord import ALICE, BOB, GUILD, FakeDiscord
from tests.fakes.llm import FakeLLM
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows


async def test_a_stranger_clicking_a_card_is_told_privately_and_the_card_waits_for_a_member(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    only_alice = frozenset({ALICE["id"]})
    async with discord_bot(discord_allowed_users=only_alice) as bot:
        thread = await open_thread(fake_discord, bot, "the budget is 40k")
    async with discord_bot(discord_allowed_users=only_alice) as bot:
        await fake_discord.user_says("what was the budget?", channel_id=thread)
        await wait_until(lambda: len(fake_discord.cards_in(thread)) == 1)
        card = fake_discord.cards_in(thread)[0]
        stranger = await fake_discord.click(button(card, "fresh"), message=card, who=BOB)
        await wait_until(lambda: bool(fake_discord.callbacks(stranger)))
        await settle(bot)
        assert tuple(db_rows(db_path, "SELECT state FROM cards")[0]) == ("pending",)
        fake_llm.reply("SUMMARY: the budget is 40k.")
        fake_llm.reply("40k.")
        await fake_discord.click(button(card, "catch_up"), message=card, who=ALICE)
        await wait_until(lambda: "40k." in fake_discord.texts_in(thread))
        await settle(bot)
    refusal = fake_discord.callbacks(stranger)[0].json
    assert refusal["type"] == 4 and refusal["data"]["flags"] & 64  # a message only Bob sees
    assert "not available to you" in refusal["data"]["content"]
    assert tuple(db_rows(db_path, "SELECT state, resolved_by_name FROM cards")[0]) == ("caught_up", "Alice")


async def test_a_bot_restricted_to_a_server_answers_dms_only_from_named_users(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply("Hi Alice.")
    restricted = {"discord_allowed_guilds": frozenset({GUILD}), "discord_allowed_users": frozenset({ALICE["id"]})}
    async with discord_bot(**restricted) as bot:
        await fake_discord.user_says("hello", channel_id="7001", guild=False)
        await fake_discord.user_says("hello too", channel_id="7002", author=BOB, guild=False)
        await wait_until(lambda: len(fake_discord.sent_in("7001")) == len(fake_discord.sent_in("7002")) == 1)
        await settle(bot)
    assert fake_discord.sent_in("7001")[0]["content"] == "Hi Alice."
    assert "not available to you" in fake_discord.sent_in("7002")[0]["content"]
    assert [r[0] for r in db_rows(db_path, "SELECT author_name FROM messages WHERE role = 'user'")] == ["Alice"]


async def test_a_link_preview_is_not_an_edit(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    query = "SELECT content, edited_utc FROM messages WHERE platform_message_id = ?"
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "root")
        linked = await fake_discord.user_says("see https://example.invalid/", channel_id=thread)
        await settle(bot)
        await fake_discord.link_preview_arrives(linked)
        await settle(bot)
        assert tuple(db_rows(db_path, query, (linked["id"],))[0]) == ("see https://example.invalid/", None)
        await fake_discord.user_edits(linked, "see https://example.invalid/ (fixed)")
        await wait_until(lambda: db_rows(db_path, query, (linked["id"],))[0]["edited_utc"] is not None)
    assert db_rows(db_path, query, (linked["id"],))[0]["content"] == "see https://example.invalid/ (fixed)"


async def test_a_mention_of_the_bots_role_opens_a_thread_like_a_mention_of_the_bot(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply("Role mention heard.")
    async with discord_bot() as bot:
        message = await fake_discord.user_says("help with CI", mention_bot_role=True)
        await wait_until(lambda: fake_discord.texts_in(message["id"]) == ["Role mention heard."])
        await settle(bot)
    assert fake_discord.threads[message["id"]]["name"] == "help with CI"
    assert db_rows(db_path, "SELECT content FROM messages WHERE role = 'user'")[0][0] == "help with CI"


async def test_a_refused_typing_indicator_does_not_cost_the_reply(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM
) -> None:
    fake_discord.fail("POST", r"/channels/\d+/typing", status=403, code=50013)
    fake_llm.reply("Answered anyway.")
    async with discord_bot() as bot:
        message = await fake_discord.user_says("quick one", mention_bot=True)
        await wait_until(lambda: fake_discord.texts_in(message["id"]) == ["Answered anyway."])
        await settle(bot)
    assert fake_discord.calls_to("POST", rf"/channels/{message['id']}/typing")


async def test_a_reply_deleted_while_it_streams_continues_in_a_new_message(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    reply = "A long and careful answer. " * 12
    fake_llm.reply(reply)
    fake_llm.chunk_chars, fake_llm.chunk_delay_s = 12, 0.05
    async with discord_bot() as bot:
        message = await fake_discord.user_says("explain slowly", mention_bot=True)
        thread = str(message["id"])
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 1)
        deleted = fake_discord.sent_in(thread)[0]["id"]
        fake_discord.messages.pop(deleted)  # a moderator removes the half-written reply
        await wait_until(lambda: [t.strip() for t in fake_discord.texts_in(thread)] == [reply.strip()])
        await settle(bot)
    assert [r[0].strip() for r in db_rows(db_path, "SELECT content FROM messages WHERE role = 'assistant'")] == [
        reply.strip()
    ]


async def test_a_click_whose_interaction_expired_still_counts(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "old topic")
    async with discord_bot() as bot:
        await fake_discord.user_says("new question", channel_id=thread)
        await wait_until(lambda: len(fake_discord.cards_in(thread)) == 1)
        card = fake_discord.cards_in(thread)[0]
        fake_discord.fail("POST", r"/interactions/\d+/[^/]+/callback", status=404, code=10062)
        fake_llm.reply("Fresh answer.")
        await fake_discord.click(button(card, "fresh"), message=card)
        await wait_until(lambda: "Fresh answer." in fake_discord.texts_in(thread))
        await settle(bot)
    assert tuple(db_rows(db_path, "SELECT state FROM cards")[0]) == ("fresh",)


async def test_the_invite_url_asks_for_exactly_the_needed_permissions_and_the_token_is_never_logged(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with discord_bot():
        pass
    found = re.search(r"invite URL: (\S+)", caplog.text)
    assert found, caplog.text
    url = found.group(1)
    permissions = discord.Permissions(int(re.search(r"permissions=(\d+)", url).group(1)))  # type: ignore[union-attr]
    needed = discord.Permissions(
        view_channel=True,
        send_messages=True,
        create_public_threads=True,
        send_messages_in_threads=True,
        read_message_history=True,
    )
    assert permissions == needed and permissions.value == 309237713920
    assert "scope=bot+applications.commands" in url and "client_id=900000000000000003" in url
    assert "fake-discord-token" not in caplog.text


async def test_stop_lets_an_in_flight_reply_finish_then_closes_the_gateway(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    reply = "Finishing this properly. " * 10
    fake_llm.reply(reply)
    fake_llm.chunk_chars, fake_llm.chunk_delay_s = 25, 0.1
    async with discord_bot():
        message = await fake_discord.user_says("long one", mention_bot=True)
        thread = str(message["id"])
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 1)
    assert [t.strip() for t in fake_discord.texts_in(thread)] == [reply.strip()]
    await wait_until(lambda: fake_discord.connected == 0)
    assert db_rows(db_path, "SELECT reply_state FROM messages WHERE role = 'user'")[0][0] == "answered"


async def test_a_model_stream_that_breaks_leaves_a_marked_partial_reply_and_a_friendly_note(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM
) -> None:
    fake_llm.reply("This sentence will be cut off somewhere in the middle of it. " * 4)
    fake_llm.chunk_chars, fake_llm.chunk_delay_s = 10, 0.03
    fake_llm.break_stream(after_chars=120)
    async with discord_bot() as bot:
        message = await fake_discord.user_says("tell me", mention_bot=True)
        thread = str(message["id"])
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 2, timeout=10)
        await settle(bot)
    partial, note = fake_discord.texts_in(thread)
    cut_short = ("This sentence will be cut off somewhere in the middle of it. " * 2)[:120].rstrip()
    assert partial == cut_short + "\n\n*(reply interrupted)*"
    assert "model" in note.lower() and len(note) < 120


async def test_after_a_gateway_outage_the_bot_reconnects_and_reads_what_it_missed(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "keep track of the outage")
        await fake_discord.drop_connections()
        fake_discord.wrote_while_bot_was_away("did you see this?", channel_id=thread, author=BOB)
        await wait_until(lambda: fake_discord.identified == 2 and fake_discord.connected == 1, timeout=10)
        await asyncio.sleep(0.1)  # READY -> on_ready after discord.py's guild_ready_timeout
        fake_llm.reply("Seen both.")
        await fake_discord.user_says("back?", channel_id=thread)
        await wait_until(lambda: "Seen both." in fake_discord.texts_in(thread))
        await settle(bot)
    users = db_rows(db_path, "SELECT content, reply_state FROM messages WHERE role = 'user' ORDER BY id")
    assert [tuple(r) for r in users] == [
        ("keep track of the outage", "answered"),
        ("did you see this?", "answered"),
        ("back?", "answered"),
    ]
    assert fake_discord.cards_in(thread) == []  # the session lived on: no "Where were we?" after a reconnect


async def test_a_reply_that_kept_its_provisional_id_does_not_switch_off_the_backfill(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply("Noted: the freeze starts Friday.")
    fake_llm.chunk_chars = 5
    async with discord_bot() as bot:
        message = await fake_discord.user_says("the freeze starts Friday", mention_bot=True)
        thread = str(message["id"])
        # The reply's last edit is refused after the reply was committed: it keeps its provisional id.
        fake_discord.fail("PATCH", rf"/channels/{thread}/messages/\d+", status=403, code=50001)
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 2)
        await settle(bot)
    assert db_rows(db_path, "SELECT platform_message_id FROM messages WHERE role = 'assistant'")[0][0].startswith(
        "local-"
    )
    fake_discord.wrote_while_bot_was_away("does the freeze include docs?", channel_id=thread, author=BOB)
    async with discord_bot() as bot:
        await fake_discord.user_says("anyone?", channel_id=thread)
        await wait_until(lambda: len(fake_discord.cards_in(thread)) == 1)
        await settle(bot)
    users = db_rows(db_path, "SELECT content FROM messages WHERE role = 'user' ORDER BY id")
    assert [r[0] for r in users] == ["the freeze starts Friday", "does the freeze include docs?", "anyone?"]


async def test_a_card_button_pressed_in_another_thread_is_refused_privately(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "the budget is 40k")
        other = await open_thread(fake_discord, bot, "lunch plans")
    async with discord_bot() as bot:
        await fake_discord.user_says("what was the budget?", channel_id=thread)
        await wait_until(lambda: len(fake_discord.cards_in(thread)) == 1)
        card = fake_discord.cards_in(thread)[0]
        # The same custom id pressed on a message in another thread (stale buttons, a forged id).
        await fake_discord.click(button(card, "fresh"), message=card | {"channel_id": other})
        await wait_until(lambda: len(fake_discord.followups()) == 1)
        await settle(bot)
        assert tuple(db_rows(db_path, "SELECT state FROM cards")[0]) == ("pending",)
        fake_llm.reply("Fresh: which budget?")
        await fake_discord.click(button(card, "fresh"), message=card)
        await wait_until(lambda: "Fresh: which budget?" in fake_discord.texts_in(thread))
        await settle(bot)
    refusal = fake_discord.followups()[0].json
    assert refusal["content"] == "That card is no longer active." and refusal["flags"] & 64
    assert tuple(db_rows(db_path, "SELECT state FROM cards")[0]) == ("fresh",)


async def test_a_refused_history_fetch_is_tried_again_and_never_costs_the_message(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "the release is on Tuesday")
    fake_discord.wrote_while_bot_was_away("is it still Tuesday?", channel_id=thread, author=BOB)
    async with discord_bot() as bot:
        fake_discord.fail("GET", rf"/channels/{thread}/messages", status=403, code=50001)
        await fake_discord.user_says("anyone?", channel_id=thread)
        await wait_until(lambda: len(fake_discord.cards_in(thread)) == 1)
        await settle(bot)
        await fake_discord.user_says("hello?", channel_id=thread)
        await wait_until(lambda: len(db_rows(db_path, "SELECT 1 FROM messages WHERE role = 'user'")) == 4, timeout=5)
        await settle(bot)
    users = db_rows(db_path, "SELECT content FROM messages WHERE role = 'user' ORDER BY id")
    assert [r[0] for r in users] == ["the release is on Tuesday", "anyone?", "is it still Tuesday?", "hello?"]
    assert len(fake_discord.calls_to("GET", rf"/channels/{thread}/messages")) == 2
