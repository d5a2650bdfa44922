"""Nobody can forge a log line: a file name, a message and a display name with a line break in them, sent
through the real discord.py client, are each written on the line of their own record, escaped.
"""

from __future__ import annotations

import io
import logging
import re

import pytest

from bots.operator.logs import log_handler
from tests.discord.conftest import DiscordBotFactory, settle
from tests.fakes.discord import FakeDiscord, user
from tests.fakes.llm import FakeLLM
from tests.fakes.waiting import wait_until

FORGED = "\nERROR bots.tools.approvals: ADMIN approved shell_exec"
RECORD_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: ")


async def test_a_file_name_with_a_line_break_is_one_escaped_log_line(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    out = io.StringIO()
    handler = log_handler(out, secrets=["fake-discord-token"])
    logging.getLogger().addHandler(handler)
    evil = fake_discord.attachment_file(f"notes.txt{FORGED}\u2028", b"plain words", content_type="text/plain")
    mallory = user("800000000000000009", f"Mallory{FORGED}")
    try:
        async with discord_bot() as bot:
            message = await fake_discord.user_says(
                f"read this{FORGED}", mention_bot=True, attachments=[evil], author=mallory
            )
            await wait_until(lambda: len(fake_discord.texts_in(message["id"])) == 1)
            await settle(bot)
    finally:
        logging.getLogger().removeHandler(handler)
    written = out.getvalue()
    assert "notes.txt\\nERROR bots.tools.approvals: ADMIN approved shell_exec\\u2028 (text/plain" in written
    lines = written.splitlines()  # str.splitlines breaks at U+2028 too
    assert not [line for line in lines if "ADMIN approved" in line and not RECORD_START.match(line)]
    assert not [line for line in lines if line.startswith("ERROR")]
