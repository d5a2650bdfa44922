"""Two `threadkeeper run` processes in Slack's OAuth mode (HTTP) on one Postgres: ``--scale bot=2`` as it runs.

Each process is installed in one workspace through its own /slack/install; a Slack Connect message whose two
copies reach the two processes at once is answered once; two events of a workspace whose token is due, one per
process at once, refresh the token once (Slack's answer to the refresh is slowed, so both processes see the old
token expire before either has saved a new one), and both answer with the new token. No token reaches a log.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fakes.bot_process import ANSWER_S, bot_process, llm_env, resumed
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads, post_event
from tests.fakes.waiting import wait_until
from tests.slack.conftest import SIGNING_SECRET, free_port
from tests.slack.distributed import KEY, event_for, install, mention_in, replies

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # two cold starts


async def test_two_processes_answer_a_shared_channel_once_and_refresh_a_token_once(
    tmp_path: Path, fake_llm: FakeLLM, postgres_url: str
) -> None:
    async with FakeSlack() as fake:
        client_id, client_secret = fake.client_credentials
        env = llm_env(fake_llm, tmp_path) | {
            "DATABASE_URL": postgres_url,
            "SLACK_CLIENT_ID": client_id,
            "SLACK_CLIENT_SECRET": client_secret,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "TOKEN_ENCRYPTION_KEY": KEY,
            "SLACK_API_URL": fake.api_url,
        }
        ports = free_port(), free_port()
        logs = tmp_path / "a.log", tmp_path / "b.log"
        async with (
            bot_process(env | {"PORT": str(ports[0])}, logs[0]),
            bot_process(env | {"PORT": str(ports[1])}, logs[1]),
        ):
            await resumed(logs[0], 1)
            await resumed(logs[1], 1)
            a, b = (f"http://127.0.0.1:{port}" for port in ports)
            await install(a, fake, "T1")
            await install(b, fake, "T2")
            await install(a, fake, "T3", rotation=True, expires_in_s=600)  # due: inside bolt's two-hour margin
            fake.workspaces["T3"].expires_in_s = 43_200
            fake.delays_s["oauth.v2.access"] = 1.0

            fake_llm.reply("once")
            fake_llm.reply("twice?")
            shared = mention_in("T1", "hello both orgs", channel="CSHARED")
            copies = []
            for url, installed in ((a, "T1"), (b, "T2")):
                body = Payloads.shared_channel_body(shared, host_team="T1", installed_team=installed)
                body["authorizations"][0]["user_id"] = f"UBOT{installed}"
                copies.append(post_event(f"{url}/slack/events", SIGNING_SECRET, body))
            assert await asyncio.gather(*copies) == [200, 200]
            await wait_until(lambda: replies(fake, shared["ts"]), timeout=ANSWER_S, what="the shared answer")

            fake_llm.reply("from a")
            fake_llm.reply("from b")
            one, two = mention_in("T3", "to a", channel="C3A"), mention_in("T3", "to b", channel="C3B")
            statuses = await asyncio.gather(
                post_event(f"{a}/slack/events", SIGNING_SECRET, event_for("T3", one)),
                post_event(f"{b}/slack/events", SIGNING_SECRET, event_for("T3", two)),
            )
            assert statuses == [200, 200]
            for message in (one, two):
                await wait_until(lambda m=message: replies(fake, m["ts"]), timeout=ANSWER_S, what="T3's answers")  # type: ignore[misc]
        assert len(replies(fake, shared["ts"])) == 1
        workspace = fake.workspaces["T3"]
        grants = [c for c in fake.calls_to("oauth.v2.access") if c.params.get("grant_type") == "refresh_token"]
        assert len(grants) == 1 and len(workspace.tokens) == 2
        for message in (one, two):
            assert {c.token for c in replies(fake, message["ts"])} == {workspace.tokens[-1]}
        tokens = [t for w in fake.workspaces.values() for t in (*w.tokens, *w.refresh_tokens)]
    written = "".join(log.read_text(errors="replace") for log in logs)
    assert not [t for t in tokens if t in written]
