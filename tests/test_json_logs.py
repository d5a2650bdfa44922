"""LOG_FORMAT=json: one JSON object a line, each with the thread, platform and event it is about; no secrets."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path

from bots.operator import log_context
from bots.operator.log_context import ContextFilter, JsonFormatter
from bots.operator.logs import RedactSecrets
from bots.seam.messages import ThreadKey
from tests.fakes.llm import FakeLLM
from tests.fakes.settings import fake_model_env
from tests.test_config_and_cli import run_cli


async def test_fields_bound_in_a_task_reach_the_tasks_it_starts_and_secrets_stay_out() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecrets(["xoxb-secret-token"]))
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("tests.json_logs")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)

    async def handle(thread: str, event: str) -> None:
        log_context.bind(thread=ThreadKey("slack", "T1", "C1", thread), event=event)

        async def worker() -> None:
            await asyncio.sleep(0)
            logger.info("answering with token %s", "xoxb-secret-token")

        await asyncio.create_task(worker())

    try:
        await asyncio.gather(handle("1.000", "Ev1"), handle("2.000", "Ev2"))
        logger.info("outside any thread")
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {(e["thread"], e["platform"], e["event"]) for e in lines[:2]} == {
        ("slack:T1:C1:1.000", "slack", "Ev1"),
        ("slack:T1:C1:2.000", "slack", "Ev2"),
    }
    assert lines[0]["message"] == "answering with token [redacted]" and lines[0]["level"] == "INFO"
    assert set(lines[2]) == {"time", "level", "logger", "message"}


async def test_chat_with_log_format_json_logs_a_failed_answer_with_its_thread_and_no_key(
    tmp_path: Path, fake_llm: FakeLLM
) -> None:
    fake_llm.fail_always(401)
    fake_llm.echo_key_in_errors = True
    env = fake_model_env(fake_llm.base_url, tmp_path / "json.db", LLM_API_KEY="sk-json-log-secret", LOG_FORMAT="json")
    result = await asyncio.to_thread(run_cli, "chat", "--thread", "logs", env=env, stdin="hello\n", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "API key is missing or invalid" in result.stdout
    assert result.stderr == f"threadkeeper chat: log lines go to {tmp_path / 'threadkeeper-chat.log'}\n"
    written = (tmp_path / "threadkeeper-chat.log").read_text(encoding="utf-8")
    entries = [json.loads(line) for line in written.splitlines()]
    failure = next(e for e in entries if e["logger"] == "agent.llm")
    assert failure["level"] == "ERROR" and "LLM_API_KEY is set but the provider rejected it" in failure["message"]
    assert failure["thread"] == "console:local:terminal:logs" and failure["platform"] == "console"
    assert len(failure["event"]) == 36  # the console's message id, a uuid
    assert "You sent: Bearer [redacted]" in failure["message"]
    assert "sk-json-log-secret" not in written + result.stdout
    assert fake_llm.requests[0].headers["Authorization"] == "Bearer sk-json-log-secret"
