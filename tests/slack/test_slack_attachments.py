"""Slack attachments: files behind ``url_private`` (bot token as Bearer) reach the model, or a note does.

The real slack-bolt app in Socket Mode, the loopback Slack (Web API, Socket Mode and file server), the loopback
model, a real SQLite log.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.attachment_files import corrupt_png, pdf, png
from tests.fakes.llm import FakeLLM
from tests.fakes.slack import FakeSlack, Payloads
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows
from tests.slack.conftest import SlackBotFactory

VISION_MODEL = "openai/gpt-4o"  # litellm's model map says it sees images; the loopback model answers for it


def with_files(event: dict[str, Any], *files: dict[str, Any]) -> dict[str, Any]:
    """A message event carrying files, as Slack sends a ``file_share``."""
    return (
        event
        | {"files": list(files), "upload": False}
        | ({"subtype": "file_share"} if event["type"] == "message" else {})
    )


def bot_texts(fake: FakeSlack, thread_ts: str) -> list[str]:
    return [fake.final_text(c.params["_ts"]) for c in fake.posts(thread_ts=thread_ts) if not c.params.get("blocks")]


def logged_attachments(db_path: Path) -> list[dict[str, Any]]:
    rows = db_rows(db_path, "SELECT attachments_json FROM messages WHERE role = 'user' ORDER BY id")
    return [a for row in rows for a in json.loads(row[0])]


async def settle(bot: Any) -> None:
    await bot.router.idle()


async def test_a_screenshot_is_downloaded_with_the_bot_token_and_sent_as_a_user_image_part(
    slack_bot: SlackBotFactory,
    fake_slack: FakeSlack,
    fake_llm: FakeLLM,
    db_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    shot = fake_slack.file("screen.png", png(2000, 500), mimetype="image/png")
    fake_llm.reply("A wide red banner.")
    async with slack_bot(llm_model=VISION_MODEL) as bot:
        mention = with_files(Payloads.mention("what is this?"), shot)
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: bot_texts(fake_slack, mention["ts"]) == ["A wide red banner."], what="the answer")
        await settle(bot)
    assert fake_slack.file_downloads == [(shot["id"], 200)]
    [(role, url)] = fake_llm.requests[-1].image_parts
    assert role == "user"
    assert Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size == (1568, 392)
    assert [(a["filename"], a["content_type"], a["used"]) for a in logged_attachments(db_path)] == [
        ("screen.png", "image/png", "image")
    ]
    assert "xoxb-test-token" not in caplog.text  # the Bearer token never reaches a log line


async def test_without_the_bot_token_the_file_server_says_401_and_the_thread_is_told(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_slack.bot_token = "xoxb-another-workspace"  # the bot's token is not the one the file server wants
    doc = fake_slack.file("plan.txt", b"step one", mimetype="text/plain")
    async with slack_bot() as bot:
        mention = with_files(Payloads.mention("read my plan"), doc)
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(bot_texts(fake_slack, mention["ts"])) == 2, what="the note and the answer")
        await settle(bot)
    assert fake_slack.file_downloads == [(doc["id"], 401)]
    assert bot_texts(fake_slack, mention["ts"])[0] == "I could not read plan.txt (the download failed (HTTP 401))."
    assert "step one" not in fake_llm.requests[-1].prompt_text


async def test_a_file_name_in_the_note_cannot_ping_the_channel(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    fake_slack.bot_token = "xoxb-another-workspace"  # the download fails, so the note names the file
    doc = fake_slack.file("<!here> & <@U1>.txt", b"step one", mimetype="text/plain")
    async with slack_bot() as bot:
        mention = with_files(Payloads.mention("read my plan"), doc)
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(bot_texts(fake_slack, mention["ts"])) == 2, what="the note and the answer")
        await settle(bot)
    note = bot_texts(fake_slack, mention["ts"])[0]
    assert note.startswith("I could not read &lt;!here&gt; &amp; &lt;@U1&gt;.txt (")
    assert "<" not in note


async def test_text_code_and_pdf_files_in_a_thread_are_inlined_and_a_model_without_vision_gets_a_note(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    long_log = ("".join(f"line {i}: all good\n" for i in range(2000))).encode()  # ~36,000 characters
    files = [
        fake_slack.file("build.log", long_log, mimetype="text/plain"),
        fake_slack.file("main.rs", b'fn main() { println!("hi"); }', mimetype="application/octet-stream"),
        fake_slack.file("q3.pdf", pdf("Churn fell to 2 percent"), mimetype="application/pdf"),
        fake_slack.file("photo.jpg", png(), mimetype="image/jpeg"),
    ]
    async with slack_bot() as bot:  # openai/fake: no vision
        mention = Payloads.mention("hello")
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(bot_texts(fake_slack, mention["ts"])) == 1, what="the first answer")
        await settle(bot)
        follow_up = with_files(Payloads.message("here are the files", thread_ts=mention["ts"]), *files)
        await fake_slack.send(Payloads.event_body(follow_up))
        await wait_until(lambda: len(bot_texts(fake_slack, mention["ts"])) == 2, what="the second answer")
        await settle(bot)
    prompt = fake_llm.requests[-1].body["messages"][-1]["content"]
    assert f"[attachment: build.log (text/plain, {len(long_log)} bytes)]\nline 0: all good\n" in prompt
    assert f"[… file cut here: {len(long_log) - 20_000:,} more characters not shown …]" in prompt
    assert '(text/plain, 29 bytes)]\nfn main() { println!("hi"); }' in prompt  # sniffed as text, not by its type
    assert "Churn fell to 2 percent" in prompt
    assert f"[attachment: photo.jpg (image/jpeg, {len(png())} bytes), not read: this model cannot see images]" in prompt
    assert [d[0] for d in fake_slack.file_downloads] == [f["id"] for f in files[:3]]  # the photo: never fetched
    assert [a["used"] for a in logged_attachments(db_path)] == ["inlined", "inlined", "inlined", "noted"]
    logged = " ".join(str(tuple(r)) for r in db_rows(db_path, "SELECT * FROM messages"))
    assert "Churn fell" not in logged and "all good" not in logged


async def test_bad_files_get_one_short_note_and_the_turn_still_answers(
    slack_bot: SlackBotFactory, fake_slack: FakeSlack, fake_llm: FakeLLM, db_path: Path
) -> None:
    files = [
        fake_slack.file("huge.bin", b"x" * 10, mimetype="application/octet-stream", size=3_000_000),
        fake_slack.file("liar.txt", b"y" * 1_500_000, mimetype="text/plain", size=100),  # bigger than it claims
        fake_slack.file("broken.png", corrupt_png(), mimetype="image/png"),
        fake_slack.file("locked.pdf", pdf("payroll", password="s3cret"), mimetype="application/pdf"),
        fake_slack.file("missing.txt", b"", mimetype="text/plain"),
        fake_slack.file("slow.txt", b"late", mimetype="text/plain"),
        fake_slack.file("scope.txt", b"needs files:read", mimetype="text/plain"),
    ]
    fake_slack.file_faults.update({files[4]["id"]: 500, files[5]["id"]: 3.0, files[6]["id"]: "sign-in"})
    fake_llm.reply("Only your words came through.")
    async with slack_bot(llm_model=VISION_MODEL, attachment_max_mb=1, attachment_timeout_s=0.5) as bot:
        mention = with_files(Payloads.mention("see attached"), *files)
        await fake_slack.send(Payloads.event_body(mention))
        await wait_until(lambda: len(bot_texts(fake_slack, mention["ts"])) == 2, what="the note and the answer")
        await settle(bot)
    note, answer = bot_texts(fake_slack, mention["ts"])
    assert note == (
        "I could not read huge.bin (larger than the 1 MB limit); liar.txt (larger than the 1 MB limit); "
        "broken.png (the image is damaged or not an image); locked.pdf (the PDF is password-protected); "
        "missing.txt (the download failed (HTTP 500)); slow.txt (the download timed out after 0.5 s); "
        "scope.txt (the download returned a sign-in page, not the file)."
    )
    assert answer == "Only your words came through."
    assert fake_llm.requests[-1].image_parts == []
    assert "payroll" not in fake_llm.requests[-1].prompt_text
    assert "Sign in to Slack" not in fake_llm.requests[-1].prompt_text
    assert [a["used"] for a in logged_attachments(db_path)] == ["refused"] * 7
    assert all(a["why"] for a in logged_attachments(db_path))
