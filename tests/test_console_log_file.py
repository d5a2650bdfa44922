"""`threadkeeper chat` keeps the terminal for the conversation: log lines go to a file it names once at start.

Run as a person runs it: a child process whose stdout and stderr are one stream, as in a terminal. The fake
model cannot call tools, so the first answer logs a WARNING (no function calling) while it is being written.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.fakes.llm import FakeLLM
from tests.fakes.settings import fake_model_env
from tests.test_config_and_cli import ROOT, run_cli

WARNING = "WARNING agent.steps: model openai/fake does not support function calling; it is offered no tools"


def chat_in_a_terminal(env: dict[str, str], stdin: str, cwd: Path) -> str:
    """What the terminal shows: stdout and stderr interleaved as written."""
    unset = ("DISCORD_", "SLACK_", "LLM_", "DATABASE_", "LOG_")
    base = {k: v for k, v in os.environ.items() if not k.startswith(unset)}
    done = subprocess.run(
        [sys.executable, "-m", "bots", "chat", "--thread", "logs"],
        input=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**base, "PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True", **env},
    )
    assert done.returncode == 0, done.stdout
    return done.stdout


async def test_a_warning_during_an_answer_goes_to_the_named_log_file_not_into_the_answer(
    tmp_path: Path, fake_llm: FakeLLM
) -> None:
    fake_llm.reply("The plan has three steps: draft, review, ship.")
    env = fake_model_env(fake_llm.base_url, tmp_path / "data" / "chat.db")
    shown = await asyncio.to_thread(chat_in_a_terminal, env, "what is the plan?\n", tmp_path)
    log_file = tmp_path / "data" / "threadkeeper-chat.log"
    assert "bot> The plan has three steps: draft, review, ship.\n" in shown
    assert shown.splitlines()[0] == f"threadkeeper chat: log lines go to {log_file}"
    assert "WARNING" not in shown
    assert WARNING in log_file.read_text(encoding="utf-8")
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600


async def test_log_file_setting_names_where_chat_logs(tmp_path: Path, fake_llm: FakeLLM) -> None:
    fake_llm.reply("Noted.")
    chosen = tmp_path / "logs" / "tk.log"
    env = fake_model_env(fake_llm.base_url, tmp_path / "chat.db", LOG_FILE=str(chosen))
    shown = await asyncio.to_thread(chat_in_a_terminal, env, "hello\n", tmp_path)
    assert shown.startswith(f"threadkeeper chat: log lines go to {chosen}\n")
    assert "bot> Noted.\n" in shown and WARNING in chosen.read_text(encoding="utf-8")


async def test_an_unwritable_log_file_names_the_variable(tmp_path: Path, fake_llm: FakeLLM) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    env = fake_model_env(fake_llm.base_url, tmp_path / "chat.db", LOG_FILE=str(tmp_path / "a-file" / "tk.log"))
    done = await asyncio.to_thread(run_cli, "chat", env=env, stdin="hello\n", cwd=tmp_path)
    assert done.returncode == 2
    assert f"LOG_FILE={tmp_path / 'a-file' / 'tk.log'} cannot be written" in done.stderr
    assert "Traceback" not in done.stderr and fake_llm.requests == []
