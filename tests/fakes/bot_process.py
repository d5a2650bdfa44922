"""``threadkeeper run`` as a real process against the loopback fakes, and one thread with it on each platform.

The kill-and-restart tests (``tests/test_kill_*.py``) SIGKILL the bot and start it again; what they share lives
here: the environment that points the child at the fake model, Discord, Slack and the fake MCP server, and a
:class:`SlackThread` and a :class:`DiscordThread` that do what a person does in a thread (write, wait for the
approval card, click it, read what was said, count the "Where were we?" cards), so one story can be told on both
platforms. Each waits with ``tests/fakes/waiting.wait_until``, never by sleeping.
"""

from __future__ import annotations

import asyncio
import copy
import signal
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

from tests.discord.conftest import button, buttons
from tests.fakes.discord import FakeDiscord
from tests.fakes.llm import FakeLLM
from tests.fakes.mcp_server import stdio_entry, write_config
from tests.fakes.process import child_process
from tests.fakes.settings import fake_model_env
from tests.fakes.slack import FakeSlack, Payloads
from tests.fakes.waiting import wait_until

READY_S = 60.0  # a cold start imports litellm and connects: slow on a loaded machine
ANSWER_S = 60.0


def bot_process(env: dict[str, str], log: Path) -> AbstractAsyncContextManager[asyncio.subprocess.Process]:
    return child_process(["-m", "bots", "run"], env | {"LOG_LEVEL": "INFO"}, log=log)


async def sigkill(process: asyncio.subprocess.Process) -> None:
    """Kill the bot as an OOM kill or a power cut would, and wait until it is gone."""
    process.send_signal(signal.SIGKILL)
    assert await process.wait() == -signal.SIGKILL


async def sigterm(process: asyncio.subprocess.Process) -> None:
    """Stop the bot politely; it must exit 0."""
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), timeout=30) == 0


async def resumed(log: Path, starts: int) -> None:
    """Wait until the ``starts``-th process logged its adapter ready: connected, and what the last one left resumed
    (the start-up's cards posted). A click sent the instant the platform connects races that start-up: the thread
    may get a "Where were we?" card before the click resolves it."""

    def ready_lines() -> int:
        return log.read_text(errors="replace").count("adapter ready") if log.exists() else 0

    await wait_until(lambda: ready_lines() >= starts, timeout=READY_S, what=f"start {starts} ready")


def llm_env(fake_llm: FakeLLM, tmp_path: Path) -> dict[str, str]:
    return fake_model_env(fake_llm.base_url, tmp_path / "bot.db")


def discord_env(fake: FakeDiscord) -> dict[str, str]:
    """What points ``threadkeeper run`` at the loopback Discord."""
    return {"DISCORD_TOKEN": "fake-token", "DISCORD_API_BASE": fake.api_base, "DISCORD_GATEWAY_URL": fake.gateway_url}


def slack_env(fake: FakeSlack) -> dict[str, str]:
    """What points ``threadkeeper run`` at the loopback Slack (Socket Mode)."""
    tokens = {"SLACK_BOT_TOKEN": "xoxb-secret-token", "SLACK_APP_TOKEN": "xapp-secret-token"}
    return tokens | {"SLACK_API_URL": fake.api_url}


def tools_env(tmp_path: Path, calls_file: Path) -> dict[str, str]:
    """The fake MCP server over stdio; each side-effecting call that really runs writes a line to ``calls_file``."""
    config = write_config(tmp_path / "mcp.json", {"fake": stdio_entry(env={"FAKE_MCP_CALLS_FILE": str(calls_file)})})
    return {"MCP_CONFIG": str(config), "LLM_FUNCTION_CALLING": "true"}


def last_streamed(fake_llm: FakeLLM) -> list[dict[str, Any]]:
    """The messages of the model's last streamed request, without the system prompt."""
    request = [r for r in fake_llm.requests if r.stream][-1]
    return [m for m in request.body["messages"] if m["role"] != "system"]


def slack_buttons(fake: FakeSlack, ending: str) -> list[str]:
    """The values of every button the bot's posts show now that end with ``ending``."""
    return [
        str(e["value"])
        for call in fake.posts()
        for b in fake.current_blocks(str(call.params["_ts"]))
        if b.get("type") == "actions"
        for e in b.get("elements", [])
        if str(e.get("value", "")).endswith(ending)
    ]


def slack_said(fake: FakeSlack, text: str) -> bool:
    return any(text in fake.final_text(c.params["_ts"]) for c in fake.posts())


class PlatformThread(Protocol):
    """One thread with the bot, as a person in it sees it; see the module docstring."""

    def env(self) -> dict[str, str]: ...

    async def connected(self, starts: int) -> None:
        """Wait until the ``starts``-th bot process is connected."""
        ...

    async def open(self, text: str) -> None:
        """Start the thread by mentioning the bot."""
        ...

    async def say(self, text: str) -> None: ...

    async def approval_card(self) -> None:
        """Wait for the approval card and remember it (it is clicked after the process that posted it died)."""
        ...

    async def click(self, action: str) -> None:
        """Click the remembered approval card's ``allow`` or ``deny``."""
        ...

    def said(self, text: str) -> bool: ...

    def card_shows(self, text: str) -> bool:
        """Whether the approval card now shows ``text`` (its outcome)."""
        ...

    def where_were_we_cards(self) -> int: ...

    def private_notes(self) -> list[str]:
        """What the clicks were told privately."""
        ...


class SlackThread:
    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake
        self.ts = ""
        self.card_values: dict[str, str] = {}

    def env(self) -> dict[str, str]:
        return slack_env(self.fake)

    async def connected(self, starts: int, *, live: int = 1) -> None:
        """Wait until the ``starts``-th bot process is connected, with ``live`` connections open in all."""
        opened = lambda: len(self.fake.calls_to("apps.connections.open")) == starts  # noqa: E731
        await wait_until(lambda: self.fake.connected == live and opened(), timeout=READY_S, what=f"start {starts}")

    async def open(self, text: str) -> None:
        mention = Payloads.mention(text)
        self.ts = mention["ts"]
        await self.fake.send(Payloads.event_body(mention))

    async def say(self, text: str) -> None:
        await self.fake.send(Payloads.event_body(Payloads.message(text, thread_ts=self.ts)))

    async def approval_card(self) -> None:
        await wait_until(lambda: bool(slack_buttons(self.fake, "allow")), timeout=ANSWER_S, what="the approval card")
        self.card_values = {a: slack_buttons(self.fake, a)[0] for a in ("allow", "deny")}

    async def click(self, action: str) -> None:
        await self.fake.send(self.fake.click_on(self.card_values[action]), kind="interactive")

    def said(self, text: str) -> bool:
        return slack_said(self.fake, text)

    def card_shows(self, text: str) -> bool:
        card = next(c for c in self.fake.posts() if c.params["_ts"] == self._card_ts())
        return text in self.fake.final_text(str(card.params["_ts"]))

    def _card_ts(self) -> str:
        for call in self.fake.posts(thread_ts=self.ts):
            blocks = call.params.get("blocks") or []
            values = [e.get("value") for b in blocks if b.get("type") == "actions" for e in b.get("elements", [])]
            if self.card_values.get("allow") in values:
                return str(call.params["_ts"])
        raise AssertionError("the approval card was never posted")

    def where_were_we_cards(self) -> int:
        return len([c for c in self.fake.posts(thread_ts=self.ts) if "tk-card:" in str(c.params.get("blocks"))])

    def private_notes(self) -> list[str]:
        return [str(e.get("text", "")) for e in self.fake.ephemerals()]


class DiscordThread:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.id = ""
        self.card: dict[str, Any] = {}
        self.clicks: list[str] = []

    def env(self) -> dict[str, str]:
        return discord_env(self.fake)

    async def connected(self, starts: int) -> None:
        await wait_until(lambda: self.fake.identified == starts, timeout=READY_S, what=f"identify {starts}")

    async def open(self, text: str) -> None:
        self.id = str((await self.fake.user_says(text, mention_bot=True))["id"])

    async def say(self, text: str) -> None:
        await self.fake.user_says(text, channel_id=self.id)

    async def approval_card(self) -> None:
        shown = lambda: any(buttons(m) for m in self.fake.sent_in(self.id))  # noqa: E731
        await wait_until(shown, timeout=ANSWER_S, what="the approval card")
        self.card = copy.deepcopy(next(m for m in self.fake.sent_in(self.id) if buttons(m)))

    async def click(self, action: str) -> None:
        self.clicks.append(await self.fake.click(button(self.card, action), message=self.card))

    def said(self, text: str) -> bool:
        return any(text in t for t in self.fake.texts_in(self.id))

    def card_shows(self, text: str) -> bool:
        return text in str(self.fake.messages[self.card["id"]].get("content"))

    def where_were_we_cards(self) -> int:
        return len(self.fake.cards_in(self.id))

    def private_notes(self) -> list[str]:
        notes = [(c.json.get("data") or {}).get("content") for i in self.clicks for c in self.fake.callbacks(i)]
        notes += [c.json.get("content") for i in self.clicks for c in self.fake.followups_of(i)]
        return [str(n) for n in notes if n]
