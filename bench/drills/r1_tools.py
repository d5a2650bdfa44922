"""R1 with tool turns: R1's kill drill, where some turns call a side-effecting MCP tool; no call may run twice.

The traffic, the kills and the audit are R1's (``bench/drills/kill_restart.py``: 20 Slack threads, two users,
card clicks, SIGKILL after a random time, ROUNDS times, then a clean run that clicks every card left). The bot
also has the fake MCP server (``tests/fakes/mcp_server.py``, over stdio, a child of the bot that dies with it),
and the fake model answers some turns with a tool call, each under an id of its own:

- ``slow_ticket`` is auto-allowed (the MCP config sets ``approval: never`` for it) and takes 1 s, so kills land
  while it runs;
- ``create_ticket`` needs an approval card, which the traffic clicks (Allow or Deny, sometimes twice, sometimes
  after the restart).

Every call that really runs writes its id to a file as it starts, across processes. The audit adds: how many
calls the model asked for, how many ran, how many ids ran more than once (the target: 0), how many interrupted
calls the thread was told had an unknown outcome, and the journal's end states.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import sqlite3
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import Result
from bench.drills.kill_restart import (
    Traffic,
    audit,
    drill_env,
    kill_rounds,
    r1_met,
    secrets_in,
    slack_shown,
    sqlite_snapshot,
)
from tests.fakes.llm import FakeLLM, Reply, ScriptedCall, ToolCallReply
from tests.fakes.mcp_server import calls_made, stdio_entry, write_config
from tests.fakes.slack import FakeSlack

ROUNDS = int(os.environ.get("BENCH_R1_ROUNDS", "50"))
TOOL_SHARE = 0.4  # of the model's answers to people, when tools are offered
UNKNOWN_NOTE = "I restarted while"  # the note in the thread about a side-effecting call cut short


class ToolModel:
    """The fake model's answers: a tool call under a new id for some turns, text otherwise (and after a result)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.asked: dict[str, str] = {}  # call id -> tool
        self._ids = itertools.count(1)
        self._replies = itertools.count()

    def __call__(self, body: dict[str, Any]) -> Reply:
        last = body["messages"][-1]
        if body.get("tools") and last["role"] == "user" and self.rng.random() < TOOL_SHARE:
            call_id = f"call_{next(self._ids)}"
            slow = self.rng.random() < 0.5
            tool = "fake__slow_ticket" if slow else "fake__create_ticket"
            self.asked[call_id] = tool
            arguments: dict[str, Any] = {"title": call_id} | ({"seconds": 1.0} if slow else {})
            return ToolCallReply(calls=(ScriptedCall(tool, arguments, id=call_id),))
        return f"reply-{next(self._replies)} to the thread so far"


def settled(db: Path) -> bool:
    """Nothing left to do: no message waits for an answer and no approval for a click (its card is clicked)."""
    connection = sqlite3.connect(db)
    try:
        waiting = connection.execute("SELECT count(*) FROM messages WHERE reply_state = 'waiting'").fetchone()[0]
        pending = connection.execute("SELECT count(*) FROM approvals WHERE state = 'pending'").fetchone()[0]
    finally:
        connection.close()
    return int(waiting) + int(pending) == 0


def log_lines(log: Path, line: str) -> int:
    return log.read_text(errors="replace").count(line) if log.exists() else 0


def states(db: Path, table: str) -> str:
    """How many rows of ``table`` (``tool_calls`` or ``approvals``) end in each state, as text."""
    connection = sqlite3.connect(db)
    try:
        rows = connection.execute(f"SELECT state, count(*) FROM {table} GROUP BY state ORDER BY state").fetchall()
    finally:
        connection.close()
    return ", ".join(f"{state} {n}" for state, n in rows) or "none"


async def run() -> list[Result]:
    rng = random.Random(20261207)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = os.environ.get("BENCH_R1_DIR") or scratch  # set: the database, log and calls stay there to read
        db, log, calls = Path(tmp) / "r1.db", Path(tmp) / "r1.log", Path(tmp) / "calls.txt"
        entry = stdio_entry(env={"FAKE_MCP_CALLS_FILE": str(calls)}, tools={"slow_ticket": {"approval": "never"}})
        config = write_config(Path(tmp) / "mcp.json", {"fake": entry})
        async with FakeLLM(chunk_chars=4, chunk_delay_s=0.01) as llm, FakeSlack() as slack:
            model = ToolModel(random.Random(rng.random()))
            llm.reply_with(model)
            env = drill_env(llm, slack, db, MCP_CONFIG=str(config), LLM_FUNCTION_CALLING="true")
            traffic = Traffic(slack, rng)
            started = time.monotonic()
            # Each process lives 1-6 s as in R1, but counted from when its tools are there and it has called the
            # model (the MCP server connects seconds after the bot, and litellm's import takes long on a loaded
            # machine), with calmer traffic than R1's, so the bot gets to the tool turns.
            exit_code = await kill_rounds(
                traffic,
                env,
                log,
                rounds=ROUNDS,
                pause_s=(0.2, 0.8),
                progress=(lambda: log_lines(log, "MCP server fake connected"), lambda: len(llm.requests)),
                settled=lambda: settled(db),
                settle_s=600,
            )
            elapsed = time.monotonic() - started
            shown, posts_per_card = slack_shown(slack)
            counts = audit(sqlite_snapshot(db), traffic.sent, shown, posts_per_card, llm)
            counts["clean exit"] = int(exit_code == 0)
            counts["secrets in log"] = secrets_in(log)
            runs = Counter(line.split(" ", 1)[1] for line in calls_made(calls))
            tool_counts = {
                "kills": ROUNDS,
                "model requests": len([r for r in llm.requests if r.stream]),
                "tool calls asked": len(model.asked),
                "calls run": sum(runs.values()),
                "run twice": sum(1 for n in runs.values() if n > 1),
                "run but never asked": len(set(runs) - set(model.asked)),
                "interrupted calls reported unknown": sum(UNKNOWN_NOTE in text for text in shown),
            }
            ended = f"; journal: {states(db, 'tool_calls')}; approvals: {states(db, 'approvals')}"
    ok = r1_met(counts) and tool_counts["calls run"] > 0
    ok = ok and tool_counts["run twice"] == 0 and tool_counts["run but never asked"] == 0
    summary = ", ".join(f"{k} {v}" for k, v in (tool_counts | counts).items()) + ended
    what = f"{ROUNDS} SIGKILLs under Slack traffic with tool turns (side-effecting MCP calls) in {elapsed:.0f} s"
    return [Result("R1-tools", what, summary, "-", "-", "0 run twice, calls run, and R1's targets", ok)]


if __name__ == "__main__":
    for result in asyncio.run(run()):
        print(result.row())
