"""The container image, built for real and its command run as a process (issue 21).

The image's ``threadkeeper run``, as its own user, on a read-only root with /data a volume, against the
loopback Slack (Socket Mode) and model: with the environment compose.yaml gives the SQLite bot, it connects,
answers a mention, serves /healthz (the image's own HEALTHCHECK passes), and exits 0 on its STOPSIGNAL; with the
environment of compose's Postgres bot, three of them (``--scale bot=3``) share one database and answer once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import urllib.request
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.image import ROOT, BuiltImage, image_root, in_image
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads
from tests.fakes.waiting import wait_until

# The first test builds the image (minutes: debootstrap, apt and pip inside the build) in its setup.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
IMAGE_UID = 10001


def compose_environment(service: str) -> dict[str, str]:
    """The `environment:` compose.yaml gives a service (a mapping, as the file writes it)."""
    services: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    return {name: str(value) for name, value in services[service]["environment"].items()}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def prepare_data(data: Path, secrets: dict[str, str]) -> None:
    """/data as a volume the image's user owns, with ``secrets`` as files under /data/secrets."""
    (data / "secrets").mkdir(parents=True)
    for name, value in secrets.items():
        (data / "secrets" / name).write_text(value + "\n")
    for path in (data, data / "secrets", *(data / "secrets").iterdir()):
        os.chown(path, IMAGE_UID, IMAGE_UID)
    data.chmod(0o700)


def slack_and_model_env(fake: FakeSlack, fake_llm: FakeLLM) -> dict[str, str]:
    """The loopback Slack and model, the Slack tokens read through *_FILE from /data/secrets."""
    return {
        "LLM_MODEL": "openai/fake",
        "LLM_API_BASE": fake_llm.base_url,
        "LLM_API_KEY": "sk-test-not-a-secret",
        "SLACK_BOT_TOKEN_FILE": "/data/secrets/slack_bot_token",
        "SLACK_APP_TOKEN_FILE": "/data/secrets/slack_app_token",
        "SLACK_API_URL": fake.api_url,
        "LOG_LEVEL": "INFO",
    }


SLACK_SECRETS = {"slack_bot_token": "xoxb-image-test", "slack_app_token": "xapp-image-test"}


def answers_in(fake: FakeSlack, thread_ts: str, text: str) -> int:
    return sum(fake.final_text(c.params["_ts"]) == text for c in fake.posts(thread_ts=thread_ts))


def healthz(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
        return int(answer.status)


def test_the_image_is_configured_as_the_issue_asks(built_image: BuiltImage) -> None:
    assert built_image.user == f"{IMAGE_UID}:{IMAGE_UID}"
    assert built_image.cmd == ["threadkeeper", "run"]
    assert built_image.stop_signal == "SIGTERM"
    assert built_image.workdir == "/data" and built_image.env["TMPDIR"] == "/data"
    assert built_image.env["METRICS_HOST"] == "0.0.0.0"
    assert built_image.healthcheck[0] == "CMD" and "/healthz" in built_image.healthcheck[-1]
    assert "DATABASE_URL" not in built_image.env  # so that DATABASE_URL_FILE can be used


def test_the_image_holds_the_slack_manifest_that_installs_take_their_scopes_from(
    built_image: BuiltImage, tmp_path: Path
) -> None:
    """Start-up of "Add to Slack" reads slack-manifest.yml: the image installs it with the package."""
    data = tmp_path / "data"
    prepare_data(data, {})
    script = "from bots.slack.install.scopes import manifest_scopes; print(len(manifest_scopes().bot))"
    with image_root(built_image.name, data) as root:
        probe = in_image(root, built_image.user, built_image.workdir, ["python3", "-c", script])
        done = subprocess.run(probe, env=built_image.env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "10", done.stderr


async def test_the_images_command_answers_in_slack_serves_healthz_and_stops_cleanly_on_sigterm(
    built_image: BuiltImage, tmp_path: Path, fake_llm: FakeLLM
) -> None:
    data = tmp_path / "data"
    prepare_data(data, SLACK_SECRETS)
    fake_llm.reply("Hello from the image.")
    port = free_port()
    with image_root(built_image.name, data) as root:
        async with FakeSlack() as fake:
            env = (
                built_image.env
                | compose_environment("bot-sqlite")
                | slack_and_model_env(fake, fake_llm)
                | {"METRICS_PORT": str(port)}  # compose's 9090 may be taken on a shared machine
            )
            command = in_image(root, built_image.user, built_image.workdir, built_image.cmd)
            with open(tmp_path / "bot.log", "wb") as log:  # noqa: ASYNC230 - once, before the child starts
                bot = await asyncio.create_subprocess_exec(*command, env=env, stdout=log, stderr=log)
            try:
                await wait_until(
                    lambda: fake.connected == 1 or bot.returncode is not None, timeout=90, what="the bot connected"
                )
                assert bot.returncode is None, (tmp_path / "bot.log").read_text()
                assert await asyncio.to_thread(healthz, port) == 200
                probe = built_image.healthcheck[1:]
                checked = await asyncio.to_thread(
                    subprocess.run, in_image(root, built_image.user, "/", probe), env=env, capture_output=True
                )
                assert checked.returncode == 0, checked.stderr
                mention = Payloads.mention("hello, image")
                await fake.send(Payloads.event_body(mention))
                await wait_until(
                    lambda: answers_in(fake, mention["ts"], "Hello from the image.") == 1,
                    timeout=60,
                    what="the answer in the thread",
                )
                bot.send_signal(getattr(signal, built_image.stop_signal))
                assert await asyncio.wait_for(bot.wait(), timeout=30) == 0, (tmp_path / "bot.log").read_text()
            finally:
                if bot.returncode is None:
                    bot.kill()
                    await bot.wait()
    log_text = (tmp_path / "bot.log").read_text()
    assert "Traceback" not in log_text and "xoxb-image-test" not in log_text
    database = data / "threadkeeper.db"
    assert database.stat().st_uid == IMAGE_UID
    with closing(sqlite3.connect(database)) as db:
        rows = db.execute("SELECT role, author_name, content FROM messages ORDER BY id").fetchall()
    assert rows == [("user", "Alice", "hello, image"), ("assistant", "threadkeeper", "Hello from the image.")]


async def test_three_of_the_images_workers_share_one_postgres_as_compose_scale_runs_them(
    built_image: BuiltImage, tmp_path: Path, fake_llm: FakeLLM, postgres_url: str
) -> None:
    """`docker compose up --scale bot=3`: compose's Postgres bot, three times, its database here the test server."""
    compose_url = compose_environment("bot")["DATABASE_URL"]
    assert compose_url.startswith("postgresql://") and "@db:5432/" in compose_url
    data = tmp_path / "data"
    prepare_data(data, SLACK_SECRETS)
    fake_llm.reply("Answered once, by one of three.")
    logs = [tmp_path / f"worker-{n}.log" for n in range(3)]
    with image_root(built_image.name, data) as root:
        async with FakeSlack() as fake:
            env = (
                built_image.env
                | compose_environment("bot")
                | slack_and_model_env(fake, fake_llm)
                | {"DATABASE_URL": postgres_url}  # the test's server in place of compose's `db` service
            )
            command = in_image(root, built_image.user, built_image.workdir, built_image.cmd)
            workers = []
            try:
                for log_path in logs:
                    with open(log_path, "wb") as log:  # noqa: ASYNC230 - once, before the child starts
                        workers.append(
                            await asyncio.create_subprocess_exec(
                                *command, env=env | {"METRICS_PORT": str(free_port())}, stdout=log, stderr=log
                            )
                        )
                await wait_until(
                    lambda: fake.connected == 3 or any(w.returncode is not None for w in workers),
                    timeout=120,
                    what="three workers connected",
                )
                assert all(w.returncode is None for w in workers), [log.read_text()[-2000:] for log in logs]
                mention = Payloads.mention("which of you answers?")
                await fake.send(Payloads.event_body(mention))
                await wait_until(
                    lambda: answers_in(fake, mention["ts"], "Answered once, by one of three.") == 1,
                    timeout=60,
                    what="the answer in the thread",
                )
                for worker in workers:
                    worker.send_signal(signal.SIGTERM)
                codes = [await asyncio.wait_for(worker.wait(), timeout=30) for worker in workers]
                assert codes == [0, 0, 0], [log.read_text()[-2000:] for log in logs]
            finally:
                for worker in workers:
                    if worker.returncode is None:
                        worker.kill()
                        await worker.wait()
            assert answers_in(fake, mention["ts"], "Answered once, by one of three.") == 1
    assert len(fake_llm.requests) == 1
    assert not (data / "threadkeeper.db").exists()
