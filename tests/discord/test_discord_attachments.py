"""Discord attachments: files from the (fake) CDN reach the model as text, PDF text or image parts, or a note.

The real discord.py client, the loopback Discord (gateway, REST and CDN), the loopback model, a real SQLite log.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

from PIL import Image

from tests.attachment_files import corrupt_png, pdf, png, slow_pdf
from tests.discord.conftest import DiscordBotFactory, button, settle
from tests.fakes.discord import FakeDiscord
from tests.fakes.llm import FakeLLM
from tests.fakes.waiting import wait_until
from tests.router_harness import db_rows

PDF = "application/pdf"
VISION_MODEL = "openai/gpt-4o"  # litellm's model map says it sees images; the loopback model answers for it


def logged_attachments(db_path: Path) -> list[dict[str, Any]]:
    rows = db_rows(db_path, "SELECT attachments_json FROM messages WHERE role = 'user' ORDER BY id")
    return [a for row in rows for a in json.loads(row[0])]


def last_user_content(fake_llm: FakeLLM) -> Any:
    return fake_llm.requests[-1].body["messages"][-1]["content"]


async def test_a_large_screenshot_reaches_a_vision_model_as_a_resized_user_image_part(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    shot = fake_discord.attachment_file("screen.png", png(3000, 2000), content_type="image/png")
    fake_llm.reply("A red rectangle.")
    async with discord_bot(llm_model=VISION_MODEL) as bot:
        message = await fake_discord.user_says("what is this?", mention_bot=True, attachments=[shot])
        await wait_until(lambda: fake_discord.texts_in(message["id"]) == ["A red rectangle."])
        await settle(bot)
    [(role, url)] = fake_llm.requests[-1].image_parts
    assert role == "user"  # never system-side: an image cannot pose as the operator's instructions
    assert url.startswith("data:image/")
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert max(sent.size) == 1568 and sent.size == (1568, 1045)
    content = last_user_content(fake_llm)
    assert content[0] == {
        "type": "text",
        "text": f"Alice: what is this?\n[attachment: screen.png (image/png, {len(png(3000, 2000))} bytes), "
        "attached as an image]",
    }
    [logged] = logged_attachments(db_path)
    assert logged == {
        "filename": "screen.png",
        "content_type": "image/png",
        "size_bytes": logged["size_bytes"],
        "used": "image",
    }
    assert "base64" not in db_rows(db_path, "SELECT attachments_json FROM messages")[0][0]


async def test_a_model_without_vision_gets_a_one_line_note_and_the_image_is_never_downloaded(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    shot = fake_discord.attachment_file("cat.jpg", png(), content_type="image/jpeg")
    async with discord_bot() as bot:  # openai/fake: litellm knows of no vision
        message = await fake_discord.user_says("look", mention_bot=True, attachments=[shot])
        await wait_until(lambda: len(fake_discord.texts_in(message["id"])) == 1)
        await settle(bot)
    assert fake_llm.requests[-1].image_parts == []
    assert last_user_content(fake_llm) == (
        f"Alice: look\n[attachment: cat.jpg (image/jpeg, {len(png())} bytes), not read: this model cannot see images]"
    )
    assert fake_discord.cdn_downloads == []
    assert logged_attachments(db_path)[0]["used"] == "noted"


async def test_code_and_pdf_files_are_inlined_and_a_long_file_is_cut_with_a_marker(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    code = "".join(f"print({i})\n" for i in range(3000)).encode()  # ~30,000 characters: over the 20,000 cap
    files = [
        fake_discord.attachment_file("main.py", code, content_type="text/x-python"),
        fake_discord.attachment_file("report.pdf", pdf("Quarterly revenue was 42 million"), content_type=PDF),
        fake_discord.attachment_file("notes", b"plain words, no extension", content_type="application/octet-stream"),
    ]
    async with discord_bot() as bot:
        message = await fake_discord.user_says("review these", mention_bot=True, attachments=files)
        await wait_until(lambda: len(fake_discord.texts_in(message["id"])) == 1)
        await settle(bot)
    prompt = last_user_content(fake_llm)
    assert f"[attachment: main.py (text/x-python, {len(code)} bytes)]\nprint(0)\nprint(1)\n" in prompt
    assert f"[… file cut here: {len(code) - 20_000:,} more characters not shown …]" in prompt
    assert "print(2999)" not in prompt
    assert "(application/pdf, " in prompt and "Quarterly revenue was 42 million" in prompt
    assert "[attachment: notes (text/plain, 25 bytes)]\nplain words, no extension" in prompt  # sniffed, not named
    logged = logged_attachments(db_path)
    assert [(a["filename"], a["used"]) for a in logged] == [
        ("main.py", "inlined"),
        ("report.pdf", "inlined"),
        ("notes", "inlined"),
    ]
    everything_logged = " ".join(str(tuple(r)) for r in db_rows(db_path, "SELECT * FROM messages"))
    assert "Quarterly revenue" not in everything_logged and "print(17)" not in everything_logged  # no blobs


async def test_bad_files_get_a_short_note_in_the_thread_and_the_turn_still_answers(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    files = [
        fake_discord.attachment("huge.zip", content_type="application/zip", size=5_000_000),
        fake_discord.attachment_file("broken.png", corrupt_png(), content_type="image/png"),
        fake_discord.attachment_file("locked.pdf", pdf("salaries", password="hunter2"), content_type="application/pdf"),
        fake_discord.attachment_file("gone.txt", b"never served", content_type="text/plain"),
        fake_discord.attachment_file("slow.txt", b"too late", content_type="text/plain"),
    ]
    fake_discord.cdn_faults.update({"gone.txt": 404, "slow.txt": 3.0})
    fake_llm.reply("I could only see your text.")
    async with discord_bot(llm_model=VISION_MODEL, attachment_max_mb=1, attachment_timeout_s=0.5) as bot:
        message = await fake_discord.user_says("files attached", mention_bot=True, attachments=files)
        await wait_until(lambda: "I could only see your text." in fake_discord.texts_in(message["id"]))
        await settle(bot)
    note, answer = fake_discord.texts_in(message["id"])
    assert note == (
        "I could not read huge.zip (larger than the 1 MB limit); broken.png (the image is damaged or not an image); "
        "locked.pdf (the PDF is password-protected); gone.txt (the download failed (HTTP 404)); "
        "slow.txt (the download timed out after 0.5 s)."
    )
    assert answer == "I could only see your text."
    assert "huge.zip" not in fake_discord.cdn_downloads  # refused by its size before any download
    assert fake_llm.requests[-1].image_parts == []
    prompt = last_user_content(fake_llm)
    assert "[attachment: locked.pdf (application/pdf, " in prompt and "could not be read: the PDF is password" in prompt
    assert "salaries" not in prompt
    assert [(a["filename"], a["used"]) for a in logged_attachments(db_path)] == [
        (name, "refused") for name in ("huge.zip", "broken.png", "locked.pdf", "gone.txt", "slow.txt")
    ]


async def test_a_pdf_that_would_take_minutes_to_read_gets_a_note_and_the_turn_still_answers(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    slow = slow_pdf()
    files = [
        fake_discord.attachment_file("slow.pdf", slow, content_type=PDF),
        fake_discord.attachment_file("question.txt", b"what is 6 x 7?", content_type="text/plain"),
    ]
    fake_llm.reply("42, and the PDF could not be read.")
    async with discord_bot(attachment_read_budget_s=1) as bot:
        message = await fake_discord.user_says("read these", mention_bot=True, attachments=files)
        await wait_until(lambda: "42, and the PDF could not be read." in fake_discord.texts_in(message["id"]))
        await settle(bot)
    assert fake_discord.texts_in(message["id"]) == [
        "I could not read slow.pdf (it took over 1 s to read).",
        "42, and the PDF could not be read.",
    ]
    prompt = last_user_content(fake_llm)
    assert f"[attachment: slow.pdf (application/pdf, {len(slow)} bytes), could not be read: it took over 1 s" in prompt
    assert "what is 6 x 7?" in prompt  # the other file of the message was read as usual
    assert [(a["filename"], a["used"]) for a in logged_attachments(db_path)] == [
        ("slow.pdf", "refused"),
        ("question.txt", "inlined"),
    ]


async def test_after_a_restart_the_catch_up_names_the_files_and_keeps_what_the_bot_learned(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM
) -> None:
    report = fake_discord.attachment_file("report.pdf", pdf("Revenue was 42 million"), content_type="application/pdf")
    fake_llm.reply("The report says revenue was 42 million.")
    async with discord_bot() as bot:
        message = await fake_discord.user_says("summarize this", mention_bot=True, attachments=[report])
        thread = str(message["id"])
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 1)
        await settle(bot)
    async with discord_bot() as bot:
        await fake_discord.user_says("and the costs?", channel_id=thread)
        await wait_until(lambda: len(fake_discord.cards_in(thread)) == 1)
        card = fake_discord.cards_in(thread)[0]
        fake_llm.reply("SUMMARY: a report; revenue 42 million.")
        fake_llm.reply("The report did not mention costs.")
        await fake_discord.click(button(card, "catch_up"), message=card)
        await wait_until(lambda: "The report did not mention costs." in fake_discord.texts_in(thread))
        await settle(bot)
    summary = next(r for r in fake_llm.requests if not r.stream)
    assert "[attachment: report.pdf (application/pdf, " in summary.prompt_text
    assert "read earlier; its text is not kept]" in summary.prompt_text
    assert "The report says revenue was 42 million." in summary.prompt_text  # the bot's reply carries it


async def test_files_are_read_once_even_when_the_first_answer_fails(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM
) -> None:
    notes = fake_discord.attachment_file("notes.md", b"# Plan\nship it", content_type="text/markdown")
    fake_llm.fail(status=400)
    async with discord_bot() as bot:
        message = await fake_discord.user_says("read this", mention_bot=True, attachments=[notes])
        thread = str(message["id"])
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 1)  # the failure notice
        await settle(bot)
        await fake_discord.user_says("try again", channel_id=thread)
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 2, what="the second answer")
        await settle(bot)
    assert fake_discord.cdn_downloads == ["notes.md"]
    assert "# Plan\nship it" in fake_llm.requests[-1].prompt_text


async def test_a_file_sent_while_the_card_waited_is_read_when_the_card_is_clicked_even_after_a_restart(
    discord_bot: DiscordBotFactory, fake_discord: FakeDiscord, fake_llm: FakeLLM, db_path: Path
) -> None:
    async with discord_bot() as bot:
        message = await fake_discord.user_says("hello", mention_bot=True)
        thread = str(message["id"])
        await wait_until(lambda: len(fake_discord.texts_in(thread)) == 1)
        await settle(bot)
    first = fake_discord.attachment_file("first.txt", b"alpha", content_type="text/plain")
    async with discord_bot() as bot:
        here = await fake_discord.user_says("here is one", channel_id=thread, attachments=[first])
        await wait_until(lambda: len(fake_discord.cards_in(thread)) == 1)
        await settle(bot)
    fake_discord.expire_attachment_links()  # the URL first.txt was delivered with no longer works
    second = fake_discord.attachment_file("second.txt", b"beta", content_type="text/plain")
    async with discord_bot() as bot:  # restarted with the card still open: first.txt's source went with the process
        await fake_discord.user_says("and another", channel_id=thread, attachments=[second])
        await settle(bot)
        card = fake_discord.cards_in(thread)[0]
        fake_llm.reply("Got both.")
        await fake_discord.click(button(card, "fresh"), message=card)
        await wait_until(lambda: "Got both." in fake_discord.texts_in(thread))
        await settle(bot)
    prompt = fake_llm.requests[-1].prompt_text
    assert "[attachment: first.txt (text/plain, 5 bytes)]\nalpha" in prompt  # fetched again, with a fresh link
    assert "[attachment: second.txt (text/plain, 4 bytes)]\nbeta" in prompt
    assert [c.path for c in fake_discord.calls_to("GET", r"/channels/\d+/messages/\d+")] == [
        f"/channels/{thread}/messages/{here['id']}"
    ]
    assert fake_discord.cdn_downloads == ["first.txt", "second.txt"]
    assert not any("before reading it" in text for text in fake_discord.texts_in(thread))
    assert [a["used"] for a in logged_attachments(db_path)] == ["inlined", "inlined"]
