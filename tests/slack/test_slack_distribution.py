"""Slack in many workspaces: "Add to Slack" through the real bolt OAuth flow, against the loopback Slack.

Two workspaces install the app; a message in each is answered with that workspace's own token (the fake records
every call's Authorization header); the tokens are sealed in the database; an uninstall deletes them from the
file's bytes and the workspace is no longer answered, until it installs again; a state that is unknown, used or
expired is refused; a Slack Connect channel shared by both is answered once; token rotation refreshes a token
before it expires; a wrong or missing encryption key is a clear start-up error.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from bots.config import ConfigError
from bots.operator.check_installs import check_slack_installs
from bots.slack import SlackAdapter
from bots.slack.install.scopes import manifest_scopes
from storage.backends import open_storage
from tests.conftest import MakeSettings
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads, post_event
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows, db_write
from tests.slack.conftest import SIGNING_SECRET, free_port
from tests.slack.distributed import (
    FIRST_ANSWER_S,
    KEY,
    DistributedBot,
    begin_install,
    distributed_bots,
    event_for,
    finish_install,
    install,
    mention_in,
    replies,
)
from tests.storage_contract.test_erasure import _tuples_holding


@pytest.fixture
def distributed_bot(make_settings: MakeSettings, fake_slack: FakeSlack) -> DistributedBot:
    return distributed_bots(make_settings, fake_slack)


def teams(db_path: Path) -> list[str]:
    return [r["team_id"] for r in db_rows(db_path, "SELECT team_id FROM slack_installations ORDER BY team_id")]


def database_bytes(db_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))


async def test_two_workspaces_install_and_each_is_answered_with_its_own_token(
    distributed_bot: DistributedBot, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with distributed_bot() as bot:
        _, _, link = await begin_install(bot)
        asked = re.search(r"[?&]scope=([^&]+)", link)
        assert asked is not None and tuple(asked.group(1).split(",")) == manifest_scopes().bot
        await install(bot, fake_slack, "T1")
        await install(bot, fake_slack, "T2")
        token1, token2 = fake_slack.workspaces["T1"].tokens[0], fake_slack.workspaces["T2"].tokens[0]
        fake_llm.reply("hello T1")
        fake_llm.reply("hello T2")
        first, second = mention_in("T1", "hi from one"), mention_in("T2", "hi from two", channel="C2")
        assert await post_event(bot.events_url, SIGNING_SECRET, event_for("T1", first)) == 200
        await wait_until(lambda: len(replies(fake_slack, first["ts"])) == 1, timeout=FIRST_ANSWER_S)
        assert await post_event(bot.events_url, SIGNING_SECRET, event_for("T2", second)) == 200
        await wait_until(lambda: len(replies(fake_slack, second["ts"])) == 1, timeout=FIRST_ANSWER_S)
        await bot.router.idle()
    for thread_ts, token in ((first["ts"], token1), (second["ts"], token2)):
        in_thread = [c for c in fake_slack.calls if thread_ts in (c.params.get("thread_ts"), c.params.get("ts"))]
        assert in_thread and {c.token for c in in_thread} == {token}
    lookups = fake_slack.calls_to("users.info")
    assert lookups and all(c.token in (token1, token2) for c in lookups)
    stored = database_bytes(db_path)
    assert token1.encode() not in stored and token2.encode() not in stored
    rows = db_rows(db_path, "SELECT team_id, team_name, tokens_ciphertext FROM slack_installations ORDER BY team_id")
    assert [(r["team_id"], r["team_name"]) for r in rows] == [("T1", "Team T1"), ("T2", "Team T2")]
    assert all(r["tokens_ciphertext"].startswith("gAAAAA") for r in rows)  # Fernet


async def test_an_uninstall_deletes_the_tokens_from_the_file_and_a_reinstall_works(
    distributed_bot: DistributedBot, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with distributed_bot() as bot:
        await install(bot, fake_slack, "T1")
        await install(bot, fake_slack, "T2")
        sealed = db_rows(db_path, "SELECT tokens_ciphertext FROM slack_installations WHERE team_id = 'T1'")[0][0]
        assert sealed.encode() in database_bytes(db_path)
        fake_slack.uninstall("T1")
        uninstalled = event_for("T1", {"type": "app_uninstalled", "event_ts": "1.0"})
        assert await post_event(bot.events_url, SIGNING_SECRET, uninstalled) == 200
        assert teams(db_path) == ["T2"]
        stored = database_bytes(db_path)
        assert sealed.encode() not in stored and fake_slack.workspaces["T1"].tokens[0].encode() not in stored
        ignored = mention_in("T1", "anyone there?")
        await post_event(bot.events_url, SIGNING_SECRET, event_for("T1", ignored))
        await bot.router.idle()
        assert replies(fake_slack, ignored["ts"]) == [] and fake_llm.requests == []
        await install(bot, fake_slack, "T1")
        fake_llm.reply("back again")
        again = mention_in("T1", "and now?")
        assert await post_event(bot.events_url, SIGNING_SECRET, event_for("T1", again)) == 200
        await wait_until(lambda: len(replies(fake_slack, again["ts"])) == 1, timeout=FIRST_ANSWER_S)
        assert {c.token for c in replies(fake_slack, again["ts"])} == {fake_slack.workspaces["T1"].tokens[-1]}


async def test_tokens_revoked_deletes_the_bot_token_too(
    distributed_bot: DistributedBot, fake_slack: FakeSlack, db_path: Path
) -> None:
    async with distributed_bot() as bot:
        await install(bot, fake_slack, "T1")
        revoked = event_for("T1", {"type": "tokens_revoked", "tokens": {"bot": ["UBOTT1"]}, "event_ts": "1.0"})
        assert await post_event(bot.events_url, SIGNING_SECRET, revoked) == 200
    assert teams(db_path) == []


async def test_an_unknown_reused_or_expired_state_is_refused(
    distributed_bot: DistributedBot, fake_slack: FakeSlack, db_path: Path
) -> None:
    async with distributed_bot() as bot:
        state, cookie, _ = await begin_install(bot)
        forged = "forged-state"
        status, _ = await finish_install(
            bot, code=fake_slack.install_code("T1"), state=forged, cookie=f"{cookie.split('=')[0]}={forged}"
        )
        assert status >= 400
        status, _ = await finish_install(bot, code=fake_slack.install_code("T1"), state=state, cookie=cookie)
        assert status == 200
        status, _ = await finish_install(bot, code=fake_slack.install_code("T2"), state=state, cookie=cookie)
        assert status >= 400  # the same state twice
        state, cookie, _ = await begin_install(bot)
        db_write(db_path, "UPDATE oauth_states SET expires_utc = '2000-01-01T00:00:00+00:00'")
        status, _ = await finish_install(bot, code=fake_slack.install_code("T3"), state=state, cookie=cookie)
        assert status >= 400
    assert teams(db_path) == ["T1"]


async def test_a_slack_connect_channel_shared_by_two_installed_workspaces_is_answered_once(
    distributed_bot: DistributedBot, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    async with distributed_bot() as bot:
        await install(bot, fake_slack, "T1")
        await install(bot, fake_slack, "T2")
        fake_llm.reply("once")
        fake_llm.reply("twice?")
        shared = mention_in("T1", "hello both orgs", channel="CSHARED")
        for installed in ("T1", "T2"):
            body = Payloads.shared_channel_body(shared, host_team="T1", installed_team=installed)
            body["authorizations"][0]["user_id"] = f"UBOT{installed}"
            assert await post_event(bot.events_url, SIGNING_SECRET, body) == 200
        await wait_until(lambda: replies(fake_slack, shared["ts"]), timeout=FIRST_ANSWER_S)
        await bot.router.idle()
    assert len(replies(fake_slack, shared["ts"])) == 1
    assert len([r for r in fake_llm.requests if r.stream]) == 1


async def test_token_rotation_refreshes_a_token_before_it_expires(
    distributed_bot: DistributedBot, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with distributed_bot() as bot:
        await install(bot, fake_slack, "T1", rotation=True, expires_in_s=600)  # inside bolt's two-hour margin
        fake_llm.reply("fresh")
        mention = mention_in("T1", "rotate?")
        assert await post_event(bot.events_url, SIGNING_SECRET, event_for("T1", mention)) == 200
        await wait_until(lambda: len(replies(fake_slack, mention["ts"])) == 1, timeout=FIRST_ANSWER_S)
        await bot.router.idle()
    workspace = fake_slack.workspaces["T1"]
    grants = [c for c in fake_slack.calls_to("oauth.v2.access") if c.params.get("grant_type") == "refresh_token"]
    assert grants and grants[0].params["refresh_token"] == workspace.refresh_tokens[0]
    assert {c.token for c in replies(fake_slack, mention["ts"])} <= set(workspace.tokens[1:])
    stored = database_bytes(db_path)
    assert not any(t.encode() in stored for t in (*workspace.tokens, *workspace.refresh_tokens))


async def test_a_wrong_encryption_key_is_a_clear_start_up_error(
    distributed_bot: DistributedBot, fake_slack: FakeSlack
) -> None:
    async with distributed_bot() as bot:
        await install(bot, fake_slack, "T1")
    with pytest.raises(ConfigError, match=r"TOKEN_ENCRYPTION_KEY cannot decrypt .* 1 stored Slack installation"):
        async with distributed_bot(token_encryption_key=Fernet.generate_key().decode()):
            pass
    rotated = f"{Fernet.generate_key().decode()},{KEY}"  # a new key first, the old one still listed
    async with distributed_bot(token_encryption_key=rotated) as bot:
        assert bot.adapter is not None
    async with distributed_bot(token_encryption_key=rotated.split(",")[0]):  # re-sealed with the new key
        pass


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"token_encryption_key": None}, r"TOKEN_ENCRYPTION_KEY is not set.*Fernet.generate_key"),
        ({"token_encryption_key": "not-a-key"}, r"TOKEN_ENCRYPTION_KEY is invalid.*Fernet.generate_key"),
        ({"slack_bot_token": "xoxb-1"}, r"SLACK_BOT_TOKEN and SLACK_CLIENT_ID / SLACK_CLIENT_SECRET are both set"),
        ({"slack_client_secret": None}, r"SLACK_CLIENT_SECRET is not set"),
        ({"slack_app_token": "xapp-1"}, r"SLACK_APP_TOKEN \(Socket Mode\).*SLACK_BOT_TOKEN"),
        ({"slack_signing_secret": None}, r"SLACK_SIGNING_SECRET is not set"),
    ],
)
async def test_settings_that_cannot_run_installs_name_the_variable(
    distributed_bot: DistributedBot, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        async with distributed_bot(**overrides):
            pass


async def test_check_lists_the_installations_and_the_scopes_each_lacks(
    distributed_bot: DistributedBot, fake_slack: FakeSlack
) -> None:
    async with distributed_bot() as bot:
        await install(bot, fake_slack, "T1", name="Acme")
        fake_slack.scopes = tuple(s for s in fake_slack.scopes if s != "files:read")
        await install(bot, fake_slack, "T2", name="Globex")
        lines = [check.line() for check in await check_slack_installs(bot.settings)]
    assert "2 workspace(s) installed" in lines[0]
    acme, globex = (next(line for line in lines if name in line) for name in ("Acme (T1)", "Globex (T2)"))
    assert acme.startswith("✓") and "all 10 scopes granted" in acme
    assert globex.startswith("✗") and "lacks files:read" in globex and "/slack/install" in globex


async def test_a_file_is_downloaded_with_the_token_of_the_workspace_it_was_shared_in(
    distributed_bot: DistributedBot, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    async with distributed_bot() as bot:
        await install(bot, fake_slack, "T1")
        await install(bot, fake_slack, "T2")
        doc = fake_slack.file("plan.txt", b"step one", mimetype="text/plain", team="T2")
        mention = mention_in("T2", "read my plan") | {"files": [doc], "upload": False}
        fake_llm.reply("read it")
        assert await post_event(bot.events_url, SIGNING_SECRET, event_for("T2", mention)) == 200
        await wait_until(lambda: len(replies(fake_slack, mention["ts"])) == 1, timeout=FIRST_ANSWER_S)
        await bot.router.idle()
    assert fake_slack.file_downloads == [(doc["id"], 200)]  # the file host accepts only T2's token
    assert "step one" in fake_llm.requests[-1].prompt_text


async def test_the_start_up_resume_outside_any_event_uses_the_threads_workspace_token(
    distributed_bot: DistributedBot, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    """A card left without its message id by a killed run is looked for at start-up, before any event arrives:
    those calls (auth.test, conversations.replies, the card) carry the token of the thread's workspace."""
    async with distributed_bot() as bot:
        await install(bot, fake_slack, "T1")
        await install(bot, fake_slack, "T2")
        fake_llm.reply("noted")
        mention = mention_in("T2", "codename is BLUEBIRD", channel="C2")
        await post_event(bot.events_url, SIGNING_SECRET, event_for("T2", mention))
        await wait_until(lambda: replies(fake_slack, mention["ts"]), timeout=FIRST_ANSWER_S)
        await bot.router.idle()
    async with distributed_bot() as bot:  # a restart: the next message gets the "Where were we?" card
        follow_up = Payloads.message("what was it?", channel="C2", thread_ts=mention["ts"], team="T2")
        await post_event(bot.events_url, SIGNING_SECRET, event_for("T2", follow_up))
        await wait_until(
            lambda: db_rows(db_path, "SELECT card_message_id FROM cards WHERE card_message_id IS NOT NULL")
        )
        await bot.router.idle()
    assert db_write(db_path, "UPDATE cards SET card_message_id = NULL") == 1  # killed before the ts was stored
    before = len(fake_slack.calls)
    async with distributed_bot() as bot:
        await wait_until(
            lambda: db_rows(db_path, "SELECT card_message_id FROM cards WHERE card_message_id IS NOT NULL")
        )
        await bot.router.idle()
    resumed = fake_slack.calls[before:]
    assert {c.method for c in resumed} >= {"conversations.replies", "auth.test"}
    assert {c.token for c in resumed} == {fake_slack.workspaces["T2"].tokens[0]}


async def test_on_postgres_an_uninstall_leaves_no_row_version_holding_the_tokens(
    distributed_bot: DistributedBot, fake_slack: FakeSlack, postgres_url: str
) -> None:
    async with distributed_bot(database_url=postgres_url) as bot:
        await install(bot, fake_slack, "T1")
        async with open_storage(postgres_url) as storage:
            found = await storage.slack_installations.find_team(team_id="T1")
            assert found is not None
            sealed = found.tokens_ciphertext
            assert await _tuples_holding(storage, sealed) > 0
            assert await _tuples_holding(storage, fake_slack.workspaces["T1"].tokens[0]) == 0  # never in plain text
            fake_slack.uninstall("T1")
            uninstalled = event_for("T1", {"type": "app_uninstalled", "event_ts": "1.0"})
            assert await post_event(bot.events_url, SIGNING_SECRET, uninstalled) == 200
            assert await storage.slack_installations.find_team(team_id="T1") is None
            assert await _tuples_holding(storage, sealed) == 0  # VACUUM took the dead row version


def test_slack_settings_without_a_bot_token_or_client_credentials_are_an_error_not_silence(
    make_settings: MakeSettings,
) -> None:
    """SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN) alone used to leave Slack off without a word."""
    settings = make_settings(slack_signing_secret=SIGNING_SECRET, port=free_port())
    assert settings.slack_enabled
    with pytest.raises(ConfigError, match=r"SLACK_BOT_TOKEN is not set.*SLACK_CLIENT_ID and SLACK_CLIENT_SECRET"):
        SlackAdapter(settings=settings, router=None)  # type: ignore[arg-type]  # refused before the router is used
