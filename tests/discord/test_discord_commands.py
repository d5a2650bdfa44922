"""Slash commands on Discord: the real discord.py command tree against the loopback Discord, a real SQLite log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import MakeSettings
from tests.discord.conftest import DiscordBotFactory, button, open_thread, settle
from tests.fakes.discord import ALICE, BOB, BOT_USER, FakeDiscord
from tests.fakes.llm import FakeLLM
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows

EPHEMERAL = 64
MODELS = "openai/fake,openai/fake-big"


async def answered(fake: FakeDiscord, interaction: str, *, count: int = 1) -> list[dict[str, Any]]:
    """The follow-ups the bot sent for ``interaction`` once there are ``count`` of them (their JSON bodies)."""
    await wait_until(lambda: len(fake.followups_of(interaction)) >= count, what=f"follow-up to {interaction}")
    return [call.json for call in fake.followups_of(interaction)]


def private_text(fake: FakeDiscord, interaction: str) -> str:
    body = fake.followups_of(interaction)[-1].json
    assert body["flags"] & EPHEMERAL, body
    return str(body["content"])


async def test_the_six_commands_are_registered_at_start_up_for_servers_and_dms(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord
) -> None:
    async with discord_bot(llm_models=MODELS):
        pass
    puts = fake_discord.calls_to("PUT", r"/applications/\d+/commands")
    assert len(puts) == 1  # one bulk overwrite
    assert sorted(c["name"] for c in fake_discord.app_commands) == [
        "export",
        "forget",
        "memory",
        "model",
        "reply",
        "retry",
        "stop",
    ]
    model = fake_discord.app_command("model")
    assert [(o["name"], o["required"], o["autocomplete"]) for o in model["options"]] == [("name", False, True)]
    reply = fake_discord.app_command("reply")
    assert [(o["name"], [c["value"] for c in o["choices"]]) for o in reply["options"]] == [
        ("mode", ["all", "mention", "auto"])
    ]
    assert all(sorted(c["contexts"]) == [0, 1] for c in fake_discord.app_commands)


async def test_model_autocompletes_from_llm_models(discord_bot: DiscordBotFactory, fake_discord: FakeDiscord) -> None:
    async with discord_bot(llm_models=MODELS) as bot:
        thread = await open_thread(fake_discord, bot, "hello")
        interaction = await fake_discord.autocomplete("model", "name", "BIG", channel_id=thread)
        await wait_until(lambda: bool(fake_discord.callbacks(interaction)), what="the autocomplete answer")
        everything = await fake_discord.autocomplete("model", "name", "", channel_id=thread)
        await wait_until(lambda: bool(fake_discord.callbacks(everything)), what="the autocomplete answer")
    body = fake_discord.callbacks(interaction)[0].json
    assert body == {"type": 8, "data": {"choices": [{"name": "openai/fake-big", "value": "openai/fake-big"}]}}
    choices = fake_discord.callbacks(everything)[0].json["data"]["choices"]
    assert [c["value"] for c in choices] == ["openai/fake", "openai/fake-big"]


async def test_retry_streams_a_new_answer_and_tells_the_asker_alone(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply("A weak answer.")
    fake_llm.reply("A better answer.")
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "which queue?")
        interaction = await fake_discord.use_command("retry", channel_id=thread, who=BOB)
        await wait_until(lambda: "A better answer." in fake_discord.texts_in(thread), what="the new answer")
        await answered(fake_discord, interaction)
        await settle(bot)
    assert fake_discord.callbacks(interaction)[0].json == {"type": 5, "data": {"flags": EPHEMERAL}}
    assert "Writing a new answer" in private_text(fake_discord, interaction)
    assert fake_discord.texts_in(thread) == ["A weak answer.", "A better answer."]
    rows = db_rows(db_path, "SELECT content FROM messages WHERE role = 'assistant' AND replaced_utc IS NOT NULL")
    assert [r["content"] for r in rows] == ["A weak answer."]


async def test_model_switch_survives_a_restart_and_the_catch_up(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM
) -> None:
    async with discord_bot(llm_models=MODELS) as bot:
        thread = await open_thread(fake_discord, bot, "hello")
        switched = await fake_discord.use_command("model", channel_id=thread, options={"name": "openai/fake-big"})
        await answered(fake_discord, switched)
        assert "now uses openai/fake-big" in private_text(fake_discord, switched)
    async with discord_bot(llm_models=MODELS) as bot:
        await fake_discord.user_says("still there?", channel_id=thread)
        await wait_until(lambda: len(fake_discord.cards_in(thread)) == 1, what="the card")
        card = fake_discord.cards_in(thread)[0]
        fake_llm.reply("SUMMARY: a greeting.")
        fake_llm.reply("Still here.")
        await fake_discord.click(button(card, "catch_up"), message=card)
        await wait_until(lambda: "Still here." in fake_discord.texts_in(thread), what="the answer")
        shown = await fake_discord.use_command("model", channel_id=thread)
        await answered(fake_discord, shown)
        await settle(bot)
    assert [r.body["model"] for r in fake_llm.requests if r.stream] == ["fake", "fake-big"]
    assert "This thread uses openai/fake-big." in private_text(fake_discord, shown)


async def test_memory_and_export_are_ephemeral_and_export_is_a_markdown_file(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM
) -> None:
    fake_llm.reply("The 14th.")
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "when do we ship?")
        memory = await fake_discord.use_command("memory", channel_id=thread)
        await answered(fake_discord, memory)
        export = await fake_discord.use_command("export", channel_id=thread)
        await answered(fake_discord, export)
    assert "Messages in my session: 2" in private_text(fake_discord, memory)
    assert "Here is this thread's log" in private_text(fake_discord, export)
    [upload] = fake_discord.uploads
    assert upload.path.endswith(f"token-{export}") and upload.filename == f"thread-discord-{thread}.md"
    assert "when do we ship?" in upload.content.decode() and "The 14th." in upload.content.decode()
    assert fake_discord.texts_in(thread) == ["The 14th."]  # nothing in the thread itself


async def test_forget_asks_with_a_button_then_purges_and_notes_it_in_the_thread(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "a secret plan")
        asked = await fake_discord.use_command("forget", channel_id=thread)
        [question] = await answered(fake_discord, asked)
        assert question["flags"] & EPHEMERAL and db_rows(db_path, "SELECT COUNT(*) AS n FROM messages")[0]["n"] == 2
        [confirm] = [b for row in question["components"] for b in row["components"]]
        assert (confirm["label"], confirm["style"]) == ("Forget this thread", 4)
        ephemeral = fake_discord.message_payload(channel_id=thread, author=BOT_USER, content=question["content"])
        ephemeral |= {"components": question["components"], "flags": EPHEMERAL}
        click = await fake_discord.click(confirm["custom_id"], message=ephemeral, who=BOB)
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 2, what="the forget note")
        await wait_until(lambda: bool(fake_discord.calls_to("PATCH", rf"/webhooks/\d+/token-{click}/.+")), what="done")
        await settle(bot)
    assert fake_discord.texts_in(thread)[-1] == (
        "Bob asked me to forget this thread: its log, summaries and session are gone."
    )
    done = fake_discord.calls_to("PATCH", rf"/webhooks/\d+/token-{click}/.+")[0].json
    assert done["content"] == "Done: I have forgotten this thread." and done["components"] == []
    assert db_rows(db_path, "SELECT COUNT(*) AS n FROM messages")[0]["n"] == 0


async def test_after_forget_in_the_thread_the_next_plain_message_is_answered_afresh(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply("Noted.")
    fake_llm.reply("Hello again.")
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "a secret plan")
        asked = await fake_discord.use_command("forget", channel_id=thread)
        [question] = await answered(fake_discord, asked)
        [confirm] = [b for row in question["components"] for b in row["components"]]
        ephemeral = fake_discord.message_payload(channel_id=thread, author=BOT_USER, content=question["content"])
        ephemeral |= {"components": question["components"], "flags": EPHEMERAL}
        await fake_discord.click(confirm["custom_id"], message=ephemeral)
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 2, what="the forget note")
        await settle(bot)
        await fake_discord.user_says("shall we start over?", channel_id=thread)  # no mention
        await wait_until(lambda: "Hello again." in fake_discord.texts_in(thread), what="the answer after forget")
        await settle(bot)
    assert not fake_discord.cards_in(thread)  # nothing to catch up on: a fresh start, not a card
    assert "a secret plan" not in fake_llm.requests[-1].prompt_text
    rows = db_rows(db_path, "SELECT content FROM messages ORDER BY id")
    assert [r["content"] for r in rows] == ["shall we start over?", "Hello again."]


async def test_commands_work_in_a_dm_with_the_bot(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM
) -> None:
    fake_llm.reply("Hi there.")
    async with discord_bot() as bot:
        await fake_discord.user_says("hello bot", channel_id="777", guild=False)
        await wait_until(lambda: fake_discord.texts_in("777") == ["Hi there."], what="the DM answer")
        await settle(bot)
        memory = await fake_discord.use_command("memory", channel_id="777", dm=True)
        await answered(fake_discord, memory)
    assert "Messages in my session: 2" in private_text(fake_discord, memory)


async def test_on_an_orphaned_thread_retry_explains_the_card_and_export_works(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM
) -> None:
    async with discord_bot() as bot:
        thread = await open_thread(fake_discord, bot, "hello")
    async with discord_bot() as bot:
        retry = await fake_discord.use_command("retry", channel_id=thread)
        await answered(fake_discord, retry)
        export = await fake_discord.use_command("export", channel_id=thread)
        await answered(fake_discord, export)
        await settle(bot)
    assert 'choose "Catch me up" or "Start fresh" on the card first' in private_text(fake_discord, retry)
    assert len(fake_discord.uploads) == 1
    assert [r for r in fake_llm.requests if r.stream][1:] == []  # nothing was answered again


async def test_refusals_are_private_notes_admins_allowlists_and_strange_threads(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, make_settings: MakeSettings
) -> None:
    fake_discord.existing_thread("555", "people's thread")
    async with discord_bot(admin_users=ALICE["id"], discord_allowed_users=f"{ALICE['id']},{BOB['id']}") as bot:
        thread = await open_thread(fake_discord, bot, "hello")
        forget = await fake_discord.use_command("forget", channel_id=thread, who=BOB)
        await answered(fake_discord, forget)
        stranger = await fake_discord.use_command("memory", channel_id=thread, who={**BOB, "id": "123"})
        await wait_until(lambda: bool(fake_discord.callbacks(stranger)), what="the refusal")
        elsewhere = await fake_discord.use_command("memory", channel_id="555")
        await answered(fake_discord, elsewhere)
    assert private_text(fake_discord, forget) == "Sorry, only the bot's admins can make me forget a thread here."
    assert "components" not in fake_discord.followups_of(forget)[-1].json
    refusal = fake_discord.callbacks(stranger)[0].json
    assert refusal["type"] == 4 and refusal["data"]["flags"] & EPHEMERAL
    assert "not available to you" in refusal["data"]["content"]
    assert "not part of this thread" in private_text(fake_discord, elsewhere)
