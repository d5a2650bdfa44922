"""R1: `threadkeeper run` under Slack traffic, SIGKILLed at random moments, restarted each time.

20 threads of traffic (mentions, follow-ups, card clicks by two users) flow through the loopback Slack in
Socket Mode while the bot process is killed with SIGKILL after a random 1-6 s, ROUNDS times. Like Slack, the
fake redelivers every envelope the dead process never acknowledged. A last, clean run clicks every card still
waiting and lets the answers finish. Then the log is audited: every delivered message present exactly once,
one card post per card, no user message answered twice, SQLite's integrity check.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import re
import signal
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import Result, until
from tests.fakes.llm import FakeLLM
from tests.fakes.process import child_process as process
from tests.fakes.settings import fake_model_env
from tests.fakes.slack import FakeSlack, Payloads

ROUNDS = int(os.environ.get("BENCH_R1_ROUNDS", "50"))
THREADS = 20
USERS = ("UALICE", "UBOB")
CARD_VALUE = re.compile(r"^tk-card:(\d+):")


class Traffic:
    """What the drill sent, so the audit can compare it with what the bot logged and posted."""

    def __init__(self, slack: FakeSlack, rng: random.Random) -> None:
        self.slack, self.rng = slack, rng
        self.roots: list[str] = []
        self.sent: dict[str, str] = {}
        self.thread_of: dict[str, str] = {}  # message text -> its thread's root ts
        self.clicked: set[str] = set()
        self.n = itertools.count()

    async def message(self) -> None:
        text = f"msg-{next(self.n)}"
        user = self.rng.choice(USERS)
        roots = self.follow_up_roots()
        if len(self.roots) < THREADS and (not roots or self.rng.random() < 0.3):
            event = Payloads.mention(text, user=user)
            self.roots.append(event["ts"])
            self.thread_of[text] = event["ts"]
        else:
            root = self.rng.choice(roots or self.roots)
            event = Payloads.message(text, user=user, thread_ts=root)
            self.thread_of[text] = root
        self.sent[event["ts"]] = text
        await self.connected()
        await self.slack.send(Payloads.event_body(event))

    async def connected(self) -> None:
        """Wait while the bot's Socket Mode client reconnects (slack-bolt does when a ping check times out, which a
        loaded machine makes happen): Slack queues what it sends meanwhile, and the fake needs a connection."""
        await until(lambda: self.slack.connected > 0, 60)

    def follow_up_roots(self) -> list[str]:
        """The threads a follow-up may go to: any of them, here."""
        return self.roots

    def live_cards(self) -> list[tuple[str, list[dict[str, Any]]]]:
        cards = []
        for call in self.slack.posts():
            ts = call.params["_ts"]
            blocks = self.slack.current_blocks(ts)
            if any(b.get("type") == "actions" for b in blocks):
                cards.append((ts, blocks))
        return cards

    async def click_cards(self, *, again: bool = False) -> None:
        for ts, blocks in self.live_cards():
            if ts in self.clicked and not again:
                continue
            self.clicked.add(ts)
            actions = next(b for b in blocks if b["type"] == "actions")["elements"]
            for _ in range(self.rng.choice((1, 2))):  # sometimes a double click or a second user
                value = self.rng.choice(actions)["value"]
                await self.connected()
                await self.slack.send(self.slack.click_on(value, user=self.rng.choice(USERS)), kind="interactive")


# What the audit reads from the log; the same SQL on SQLite and Postgres (R6 reads a Postgres log).
LOGGED_USER_IDS = "SELECT platform_message_id FROM messages WHERE role = 'user'"
COUNTS = {
    "waiting": "SELECT count(*) FROM messages WHERE reply_state = 'waiting'",
    "cards": "SELECT count(*) FROM cards",
    "open cards": "SELECT count(*) FROM cards WHERE state IN ('pending', 'catching_up')",
}


@dataclass(frozen=True)
class LogSnapshot:
    """The log as the audit needs it, read once the bots have stopped."""

    logged: list[str]
    counts: dict[str, int]
    integrity_ok: bool


def sqlite_snapshot(db: Path) -> LogSnapshot:
    connection = sqlite3.connect(db)
    try:
        logged = [row[0] for row in connection.execute(LOGGED_USER_IDS)]
        counts = {name: int(connection.execute(sql).fetchone()[0]) for name, sql in COUNTS.items()}
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        connection.close()
    return LogSnapshot(logged, counts, integrity == "ok")


def slack_shown(slack: FakeSlack) -> tuple[set[str], Counter[str]]:
    """What Slack shows: the final text of every bot message, and how many messages carried each card's buttons."""
    posts_per_card: Counter[str] = Counter()
    for call in slack.posts():
        for block in call.params.get("blocks") or []:
            if block.get("type") == "actions":
                match = CARD_VALUE.match(block["elements"][0]["value"])
                if match:
                    posts_per_card[match.group(1)] += 1
    return {slack.final_text(c.params["_ts"]) for c in slack.posts()}, posts_per_card


def audit(
    snapshot: LogSnapshot, sent: Collection[str], shown: set[str], posts_per_card: Counter[str], llm: FakeLLM
) -> dict[str, int]:
    """R1's audit: every delivered message logged once, one card post per card, no message answered twice.

    ``sent`` are the platform ids of the messages people sent; ``shown`` the final text of the bot's messages on
    the platform, and ``posts_per_card`` how many of them carried each card's buttons (``slack_shown``).
    """
    logged, waiting = snapshot.logged, snapshot.counts["waiting"]
    card_rows, open_cards = snapshot.counts["cards"], snapshot.counts["open cards"]
    answered: Counter[str] = Counter()
    for request in llm.requests:
        if not request.stream or request.tool_calls or request.reply not in shown:
            continue  # a step that asked for tools answers nothing yet: the request that continues it does
        messages = request.body["messages"]
        answers = (i for i, m in enumerate(messages) if m["role"] == "assistant" and not m.get("tool_calls"))
        last_bot = max(answers, default=0)
        for message in messages[last_bot + 1 :]:
            if message["role"] == "user":
                answered[message["content"].split(": ", 1)[-1]] += 1
    return {
        "delivered": len(sent),
        "missing": len(set(sent) - set(logged)),
        "duplicate rows": len(logged) - len(set(logged)),
        "cards": card_rows,
        "cards posted more than once": sum(1 for n in posts_per_card.values() if n > 1),
        "open cards at the end": open_cards,
        "double replies": sum(1 for n in answered.values() if n > 1),
        "left waiting": waiting,
        "integrity ok": int(snapshot.integrity_ok),
    }


async def kill_rounds(
    traffic: Traffic,
    env: dict[str, str],
    log: Path,
    *,
    rounds: int,
    alive_s: tuple[float, float] = (1.0, 6.0),
    pause_s: tuple[float, float] = (0.02, 0.3),
    progress: Sequence[Callable[[], int]] = (),
    settled: Callable[[], bool] = lambda: True,
    settle_s: float = 120.0,
) -> int:
    """``rounds`` times: start the bot, send traffic (a pause within ``pause_s`` between steps) for a random time
    within ``alive_s``, SIGKILL it; the time counts from the connection, or once every counter in ``progress`` has
    grown since the start (say, the process called the model). Then a last clean run clicks every card still
    waiting until nothing more happens (for 5 s, and ``settled()`` holds, within ``settle_s``), and stops with
    SIGTERM; its exit code."""
    slack, rng = traffic.slack, traffic.rng
    for _ in range(rounds):
        before = [count() for count in progress]
        async with process(["-m", "bots", "run"], env, log=log) as bot:
            connections = len(slack.connected_at)
            await until(lambda connections=connections: len(slack.connected_at) > connections, 60)
            await slack.redeliver_unacked()
            alive, deadline = rng.uniform(*alive_s), time.monotonic() + 120
            while time.monotonic() < deadline:
                if alive and all(count() > b for count, b in zip(progress, before, strict=True)):
                    deadline, alive = min(deadline, time.monotonic() + alive), 0.0
                await traffic.message()
                await traffic.click_cards()
                await asyncio.sleep(rng.uniform(*pause_s))
            bot.send_signal(signal.SIGKILL)
    async with process(["-m", "bots", "run"], env, log=log) as bot:
        connections = len(slack.connected_at)
        await until(lambda: len(slack.connected_at) > connections, 60)
        await slack.redeliver_unacked()
        quiet_since, deadline = time.monotonic(), time.monotonic() + settle_s
        while time.monotonic() < deadline:
            before = len(slack.calls)
            await traffic.click_cards(again=True)
            await asyncio.sleep(1.0)
            if len(slack.calls) != before or slack.unacked:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 5 and settled():
                break
        bot.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(bot.wait(), 30)


SECRETS = ("xoxb-drill-secret", "xapp-drill-secret", "sk-drill-secret")


def drill_env(llm: FakeLLM, slack: FakeSlack, db: Path, **extra: str) -> dict[str, str]:
    """The bot's environment in R1: the fake model and Slack, with keys the audit looks for in the log."""
    return fake_model_env(
        llm.base_url,
        db,
        LLM_API_KEY=SECRETS[2],
        SLACK_BOT_TOKEN=SECRETS[0],
        SLACK_APP_TOKEN=SECRETS[1],
        SLACK_API_URL=slack.api_url,
        LOG_LEVEL="INFO",
        **extra,
    )


def secrets_in(log: Path) -> int:
    text = log.read_text(errors="replace")
    return sum(text.count(secret) for secret in SECRETS)


def r1_met(counts: dict[str, int]) -> bool:
    """R1's targets: 0 missing, 0 duplicates, 1 card each, 0 double replies, integrity ok, no secret logged."""
    return (
        counts["missing"] == 0
        and counts["duplicate rows"] == 0
        and counts["double replies"] == 0
        and counts["cards posted more than once"] == 0
        and counts["integrity ok"] == 1
        and counts["secrets in log"] == 0
    )


async def run() -> list[Result]:
    rng = random.Random(20261125)
    with tempfile.TemporaryDirectory() as tmp:
        db, log = Path(tmp) / "r1.db", Path(tmp) / "r1.log"
        async with FakeLLM(chunk_chars=4, chunk_delay_s=0.01) as llm, FakeSlack() as slack:
            replies = itertools.count()
            llm.reply_with(lambda body: f"reply-{next(replies)} to the thread so far")
            traffic = Traffic(slack, rng)
            started = time.monotonic()
            exit_code = await kill_rounds(traffic, drill_env(llm, slack, db), log, rounds=ROUNDS)
            elapsed = time.monotonic() - started
            counts = audit(sqlite_snapshot(db), traffic.sent, *slack_shown(slack), llm)
            counts["clean exit"] = int(exit_code == 0)
            counts["secrets in log"] = secrets_in(log)
    summary = ", ".join(f"{k} {v}" for k, v in counts.items())
    return [
        Result(
            "R1",
            f"{ROUNDS} SIGKILLs under Slack traffic in {elapsed:.0f} s",
            summary,
            "-",
            "-",
            "0 missing, 0 duplicates, 1 card each, 0 double replies, integrity ok",
            r1_met(counts),
        )
    ]


if __name__ == "__main__":
    for result in asyncio.run(run()):
        print(result.row())
