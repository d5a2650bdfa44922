"""One bot per database: a second `run` or `chat` on the same file is refused, naming the first (issue 14, item 8).

Real processes, as an operator starts them: a rolling deploy's overlap is a second `threadkeeper run`, and a
curious colleague is `threadkeeper chat` pointed at the production file.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import pytest

from tests.fakes.llm import FakeLLM
from tests.fakes.process import child_process
from tests.fakes.settings import fake_model_env
from tests.fakes.slack import FakeSlack
from tests.fakes.waiting import wait_until
from tests.test_config_and_cli import run_cli

pytestmark = pytest.mark.slow


async def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The fakes run on this event loop, so the CLI runs in a worker thread."""
    return await asyncio.to_thread(run_cli, *args, env=env, cwd=cwd)


async def test_a_second_bot_on_the_same_database_is_refused_until_the_first_exits(
    tmp_path: Path, fake_llm: FakeLLM
) -> None:
    db = tmp_path / "data" / "bot.db"
    async with FakeSlack() as fake:
        env = fake_model_env(
            fake_llm.base_url,
            db,
            SLACK_BOT_TOKEN="xoxb-lock-test",
            SLACK_APP_TOKEN="xapp-lock-test",
            SLACK_API_URL=fake.api_url,
        )
        async with child_process(["-m", "bots", "run"], env, log=tmp_path / "first.log") as first:
            await wait_until(lambda: fake.connected == 1, timeout=60)
            second_run = await _cli("run", env=env, cwd=tmp_path)
            second_chat = await _cli("chat", "--thread", "peek", env=env, cwd=tmp_path)
            export = await _cli("export", "no-such-thread", env=env, cwd=tmp_path)
            assert len(fake.calls_to("apps.connections.open")) == 1, "the second run connected to Slack"
            first.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(first.wait(), timeout=30) == 0
        for refused in (second_run, second_chat):
            assert refused.returncode == 2, refused.stderr
            assert f"is in use by another threadkeeper process (pid {first.pid} on " in refused.stderr
            assert "running `threadkeeper run` since 20" in refused.stderr
            assert "use Postgres" in refused.stderr and "threadkeeper migrate-db" in refused.stderr
            assert "Traceback" not in refused.stderr
        # export and forget take no lock: export ran, and found nothing by that name.
        assert export.returncode == 2 and "No thread named 'no-such-thread'" in export.stderr
        after = await _cli("chat", "--thread", "peek", env=env, cwd=tmp_path)
    assert after.returncode == 0, after.stderr
    assert (tmp_path / "data" / "bot.db.lock").stat().st_mode & 0o777 == 0o600
