"""The in-thread commands through the real router: a real SQLite file, real litellm talking HTTP to a fake model.

The platform adapters (tests/discord, tests/slack) and the console translate into the very calls these stories
make; here each command is checked for what it does to the log, the session and the model's next request,
before and after a restart, on an orphaned thread, and when it is refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bots.config import ConfigError, load_settings
from bots.operator.check import preflight
from bots.router.commands.flow import (
    ADMINS_ONLY,
    BUSY,
    NOT_HERE,
    NOTHING_TO_RETRY,
    ORPHANED,
    Command,
    CommandName,
    CommandResult,
    ForgetClick,
    parse_command,
)
from bots.seam.messages import Author, CardAction
from bots.seam.ports import parse_forget_button_id
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM, ScriptedCall
from tests.fakes.waiting import wait_until
from tests.router_harness import ALICE, BOB, Bot, db_rows, message, running_router, thread_key

MODELS = "openai/fake,openai/fake-big"


async def run(bot: Bot, name: CommandName, argument: str = "", *, user: Author = ALICE) -> CommandResult:
    result = await bot.router.handle_command(Command(thread_key(), name, user, argument=argument))
    await bot.router.idle()
    return result


def models_asked(fake: FakeLLM) -> list[str]:
    return [str(r.body["model"]) for r in fake.requests if r.stream]


def test_a_command_is_exactly_the_command_word_and_model_takes_one_name() -> None:
    assert parse_command("/retry", slash=True) == (CommandName.RETRY, "")
    assert parse_command("retry", slash=True) is None  # the console needs the slash: any other line is a message
    assert parse_command("model openai/fake-big", slash=False) == (CommandName.MODEL, "openai/fake-big")
    assert parse_command("MEMORY", slash=False) == (CommandName.MEMORY, "")
    assert parse_command("memory leaks in Python?", slash=False) is None
    assert parse_command("model a b", slash=False) is None
    assert parse_command("what is the plan", slash=False) is None


def test_llm_models_default_to_llm_model_and_a_bad_list_names_the_variable() -> None:
    assert load_settings(_env_file=None, llm_model="openai/x").models == ("openai/x",)
    settings = load_settings(_env_file=None, llm_models="openai/a, openai/b ,openai/a", admin_users="U1,U2")
    assert (settings.models, settings.default_model, settings.admin_users) == (
        ("openai/a", "openai/b"),
        "openai/a",
        frozenset({"U1", "U2"}),
    )
    with pytest.raises(ConfigError, match=r"LLM_MODELS is invalid: .*'gpt 4'.* Set it to a comma-separated list"):
        load_settings(_env_file=None, llm_models="openai/a,gpt 4")


async def test_retry_replaces_the_answer_in_the_log_the_session_and_the_export(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply("The first, weak answer.")
    fake_llm.reply("A better answer.")
    fake_llm.reply("Noted.")
    async with running_router(make_settings()) as bot:
        await bot.say("Which queue should we use?")
        result = await run(bot, CommandName.RETRY)
        assert result.private_note is not None and "new answer" in result.private_note
        assert bot.outbox.replies_in(thread_key()) == ["The first, weak answer.", "A better answer."]
        await bot.say("Thanks.", author=BOB)
        exported = await run(bot, CommandName.EXPORT)
    retried, follow_up = fake_llm.requests[1], fake_llm.requests[2]
    assert [m["content"] for m in retried.body["messages"][1:]] == ["Alice: Which queue should we use?"]
    assert [m["content"] for m in follow_up.body["messages"][1:]] == [
        "Alice: Which queue should we use?",
        "A better answer.",
        "Bob: Thanks.",
    ]
    rows = db_rows(
        db_path, "SELECT content, reply_state, replaced_utc IS NOT NULL AS replaced FROM messages ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [
        ("Which queue should we use?", "answered", 0),
        ("The first, weak answer.", None, 1),
        ("A better answer.", None, 0),
        ("Thanks.", "answered", 0),
        ("Noted.", None, 0),
    ]
    assert exported.file is not None
    assert "*(replaced by a retry)*\n\n> The first, weak answer." in exported.file.text
    assert "\n\nA better answer.\n" in exported.file.text


async def test_after_a_restart_the_catch_up_leaves_the_replaced_answer_out_and_retry_works_again(
    make_settings: MakeSettings, fake_llm: FakeLLM
) -> None:
    fake_llm.reply("Use Redis.")
    fake_llm.reply("Use Postgres.")
    async with running_router(make_settings()) as bot:
        await bot.say("Which queue?")
        await run(bot, CommandName.RETRY)
    async with running_router(make_settings()) as bot:
        await bot.say("Remind me?")
        orphaned = await run(bot, CommandName.RETRY)
        assert orphaned.private_note == ORPHANED
        fake_llm.reply("SUMMARY: they chose Postgres.")
        fake_llm.reply("Postgres.")
        await bot.click(CardAction.CATCH_UP)
        fake_llm.reply("Postgres, as agreed.")
        again = await run(bot, CommandName.RETRY)
    summary = next(r for r in fake_llm.requests if not r.stream)
    assert "Use Postgres." in summary.prompt_text and "Use Redis." not in summary.prompt_text
    assert again.private_note is not None and "new answer" in again.private_note
    assert bot.outbox.replies_in(thread_key()) == ["Postgres.", "Postgres, as agreed."]
    retried = fake_llm.requests[-1].body["messages"]
    assert "SUMMARY: they chose Postgres." in retried[0]["content"]
    assert [m["content"] for m in retried[1:]] == ["Alice: Remind me?"]


async def test_retry_while_nothing_was_answered_or_in_a_thread_the_bot_is_not_in(
    make_settings: MakeSettings, fake_llm: FakeLLM
) -> None:
    async with running_router(make_settings()) as bot:
        assert (await run(bot, CommandName.RETRY)).private_note == NOT_HERE
        fake_llm.fail_always(500)
        await bot.say("hello?")
        assert (await run(bot, CommandName.RETRY)).private_note == NOTHING_TO_RETRY


async def test_model_switch_is_used_at_once_and_survives_a_restart_and_a_catch_up(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    settings = make_settings(llm_models=MODELS)
    async with running_router(settings) as bot:
        await bot.say("hi")
        shown = await run(bot, CommandName.MODEL)
        assert shown.private_note is not None and "uses openai/fake." in shown.private_note
        assert "openai/fake, openai/fake-big" in shown.private_note
        switched = await run(bot, CommandName.MODEL, "fake-big")  # the part after the provider is enough
        assert switched.private_note is not None and "now uses openai/fake-big" in switched.private_note
        await bot.say("and now?")
        unknown = await run(bot, CommandName.MODEL, "gpt-5")
        assert unknown.private_note is not None and "can't use 'gpt-5'" in unknown.private_note
    async with running_router(settings) as bot:
        await bot.say("still there?")
        fake_llm.reply("SUMMARY: a greeting.")
        await bot.click(CardAction.CATCH_UP)
        memory = await run(bot, CommandName.MEMORY)
    assert models_asked(fake_llm) == ["fake", "fake-big", "fake-big"]
    assert memory.private_note is not None and "Model: openai/fake-big" in memory.private_note
    rows = db_rows(db_path, "SELECT model FROM sessions ORDER BY id")
    assert [r["model"] for r in rows] == ["openai/fake", "openai/fake-big"]


async def test_a_model_chosen_on_an_orphaned_thread_is_the_one_start_fresh_uses(
    make_settings: MakeSettings, fake_llm: FakeLLM
) -> None:
    settings = make_settings(llm_models=MODELS)
    async with running_router(settings) as bot:
        await bot.say("hi")
    async with running_router(settings) as bot:
        await bot.say("back again")
        await run(bot, CommandName.MODEL, "openai/fake-big")
        await bot.click(CardAction.FRESH)
    assert models_asked(fake_llm) == ["fake", "fake-big"]


async def test_a_choice_the_operator_removed_from_llm_models_falls_back_to_the_default(
    make_settings: MakeSettings, fake_llm: FakeLLM
) -> None:
    async with running_router(make_settings(llm_models=MODELS)) as bot:
        await bot.say("hi")
        await run(bot, CommandName.MODEL, "fake-big")
    async with running_router(make_settings(llm_models="openai/fake")) as bot:
        await bot.say("hello")
        await bot.click(CardAction.FRESH)
    assert models_asked(fake_llm) == ["fake", "fake"]


async def test_memory_shows_the_seeded_summary_compaction_count_and_model(
    make_settings: MakeSettings, fake_llm: FakeLLM
) -> None:
    async with running_router(make_settings()) as bot:
        await bot.say("We ship on the 14th.")
        fresh = await run(bot, CommandName.MEMORY)
    assert fresh.private_note is not None
    assert "Messages in my session: 2" in fresh.private_note
    assert "Compaction: not yet" in fresh.private_note
    assert "no summary (the session started fresh)" in fresh.private_note
    async with running_router(make_settings()) as bot:
        await bot.say("When?")
        orphaned = await run(bot, CommandName.MEMORY)
        fake_llm.reply("SUMMARY: shipping on the 14th.")
        await bot.click(CardAction.CATCH_UP)
        caught_up = await run(bot, CommandName.MEMORY, user=BOB)
    assert orphaned.private_note == f"{ORPHANED}\nModel: openai/fake"
    assert caught_up.private_note is not None
    assert "Seeded with this summary:\nSUMMARY: shipping on the 14th." in caught_up.private_note
    assert "Messages in my session: 2" in caught_up.private_note


async def test_export_works_on_an_orphaned_thread(make_settings: MakeSettings, fake_llm: FakeLLM) -> None:
    fake_llm.reply("Noted: the 14th.")
    async with running_router(make_settings()) as bot:
        await bot.say("We ship on the 14th.")
    async with running_router(make_settings()) as bot:
        await bot.say("When?")
        result = await run(bot, CommandName.EXPORT)
    assert result.file is not None and result.file.filename.endswith(".md")
    assert "We ship on the 14th." in result.file.text and "Noted: the 14th." in result.file.text
    assert "When?" in result.file.text


async def test_forget_asks_first_then_purges_like_the_cli_and_says_so_in_the_thread(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with running_router(make_settings()) as bot:
        await bot.say("a secret plan")
        asked = await run(bot, CommandName.FORGET)
        assert db_rows(db_path, "SELECT COUNT(*) AS n FROM messages")[0]["n"] == 2  # nothing purged yet
        assert asked.confirm_button is not None
        thread_id = parse_forget_button_id(asked.confirm_button)
        assert thread_id is not None
        done = await bot.router.handle_forget_click(ForgetClick(thread_id, BOB, thread=thread_key()))
        again = await bot.router.handle_forget_click(ForgetClick(thread_id, BOB, thread=thread_key()))
        assert bot.router.live_sessions == 0
        await bot.say("hello again")
    assert done.private_note is not None and "forgotten" in done.private_note
    assert again.private_note is not None and "already forgotten" in again.private_note
    assert bot.outbox.notices == [
        (thread_key(), "Bob asked me to forget this thread: its log, summaries and session are gone.")
    ]
    rows = db_rows(db_path, "SELECT content FROM messages ORDER BY id")
    assert "a secret plan" not in [r["content"] for r in rows]
    assert db_rows(db_path, "SELECT COUNT(*) AS n FROM erasures WHERE kind = 'thread'")[0]["n"] == 1
    assert bot.outbox.cards_posted == []  # a thread started afresh, not an orphan


async def test_forget_on_an_orphaned_thread_takes_its_card_and_waiting_messages(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with running_router(make_settings()) as bot:
        await bot.say("hi")
    async with running_router(make_settings()) as bot:
        await bot.say("are you there?")
        asked = await run(bot, CommandName.FORGET)
        assert asked.confirm_button is not None
        thread_id = parse_forget_button_id(asked.confirm_button)
        assert thread_id is not None
        await bot.router.handle_forget_click(ForgetClick(thread_id, ALICE, thread=thread_key()))
    assert db_rows(db_path, "SELECT COUNT(*) AS n FROM messages")[0]["n"] == 0
    assert db_rows(db_path, "SELECT COUNT(*) AS n FROM cards")[0]["n"] == 0


async def test_a_forget_button_counts_only_in_its_own_thread(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with running_router(make_settings()) as bot:
        await bot.say("hi")
        asked = await run(bot, CommandName.FORGET)
        assert asked.confirm_button is not None
        thread_id = parse_forget_button_id(asked.confirm_button)
        assert thread_id is not None
        elsewhere = await bot.router.handle_forget_click(ForgetClick(thread_id, ALICE, thread=thread_key("t2")))
    assert elsewhere.private_note == "That button belongs to another thread; nothing was forgotten."
    assert db_rows(db_path, "SELECT COUNT(*) AS n FROM messages")[0]["n"] == 2


async def test_admin_users_alone_may_forget_or_switch_the_model_others_get_a_polite_note(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with running_router(make_settings(llm_models=MODELS, admin_users=ALICE.id)) as bot:
        await bot.say("hi")
        refused_model = await run(bot, CommandName.MODEL, "fake-big", user=BOB)
        shown = await run(bot, CommandName.MODEL, user=BOB)  # looking is not changing
        refused_forget = await run(bot, CommandName.FORGET, user=BOB)
        asked = await run(bot, CommandName.FORGET)
        assert asked.confirm_button is not None
        thread_id = parse_forget_button_id(asked.confirm_button)
        assert thread_id is not None
        refused_click = await bot.router.handle_forget_click(ForgetClick(thread_id, BOB, thread=thread_key()))
        memory = await run(bot, CommandName.MEMORY, user=BOB)
    assert refused_model.private_note == ADMINS_ONLY.format(what="change the model")
    assert shown.private_note is not None and "uses openai/fake." in shown.private_note
    assert refused_forget.private_note == ADMINS_ONLY.format(what="make me forget a thread")
    assert refused_forget.confirm_button is None
    assert refused_click.private_note == ADMINS_ONLY.format(what="make me forget a thread")
    assert memory.private_note is not None and "Model: openai/fake" in memory.private_note
    assert db_rows(db_path, "SELECT COUNT(*) AS n FROM messages")[0]["n"] == 2
    assert db_rows(db_path, "SELECT COUNT(*) AS n FROM thread_settings")[0]["n"] == 0


async def test_start_up_names_a_model_of_llm_models_that_cannot_be_used(make_settings: MakeSettings) -> None:
    await preflight(make_settings(llm_models=MODELS))
    with pytest.raises(ConfigError, match=r"The model notaprovider/x \(listed in LLM_MODELS\) cannot be used"):
        await preflight(make_settings(llm_models="openai/fake,notaprovider/x"))


async def test_retry_of_an_answer_that_used_a_tool_takes_the_whole_turn_out_of_the_session(
    make_settings: MakeSettings, fake_llm: FakeLLM
) -> None:
    fake_llm.call_tools(ScriptedCall("search_thread", {"query": "staging port"}))
    fake_llm.reply("It is 8080, I think.")
    fake_llm.reply("Port 8080.")
    fake_llm.reply("You're welcome.")
    async with running_router(make_settings(llm_function_calling=True)) as bot:
        await bot.say("Which port does staging use?")
        await run(bot, CommandName.RETRY)
        await bot.say("thanks")
    retried, follow_up = fake_llm.requests[2], fake_llm.requests[3]
    assert [m["role"] for m in retried.body["messages"]] == ["system", "user"]
    assert [(m["role"], m.get("content")) for m in follow_up.body["messages"][1:]] == [
        ("user", "Alice: Which port does staging use?"),
        ("assistant", "Port 8080."),
        ("user", "Alice: thanks"),
    ]


async def test_retry_while_an_answer_is_being_written_waits_for_it(
    make_settings: MakeSettings, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_llm.reply("The first answer, slowly.")
    fake_llm.reply("The second answer.")
    release = fake_llm.pause_after(5)
    async with running_router(make_settings()) as bot:
        await bot.router.handle_message(message("hello?"))
        await wait_until(lambda: len(fake_llm.requests) == 1, what="the answer under way")
        busy = await bot.router.handle_command(Command(thread_key(), CommandName.RETRY, ALICE))
        release.set()
        await bot.router.idle()
        again = await run(bot, CommandName.RETRY)
    assert busy.private_note == BUSY
    assert again.private_note is not None and "new answer" in again.private_note
    assert bot.outbox.replies_in(thread_key()) == ["The first answer, slowly.", "The second answer."]
