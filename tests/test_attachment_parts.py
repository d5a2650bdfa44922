"""Images in the agent session: user-role parts, counted in the token budget, a note when they cannot fit."""

from __future__ import annotations

from agent.llm import LLMClient, LLMConfig
from agent.parts import ImagePart, images_within
from agent.session import AgentSession, UserTurn
from agent.summarize import Summarizer
from bots.files.attachments import label
from bots.files.file_reading import cap_text
from tests.attachment_files import png
from tests.fakes.llm import FakeLLM


def vision_session(fake: FakeLLM) -> AgentSession:
    llm = LLMClient(
        LLMConfig(model="openai/gpt-4o", api_base=fake.base_url, api_key="sk-test"), context_window_fallback=8192
    )
    return AgentSession(llm=llm, summarizer=Summarizer(llm), system_prompt="Be brief.")


def image(width: int = 2048, height: int = 2048) -> ImagePart:
    return ImagePart(mime="image/png", data=png(8, 8), width=width, height=height)


def test_an_image_costs_what_its_tiles_cost() -> None:
    assert image(512, 512).tokens == 85 + 170 * 1
    assert image(2048, 2048).tokens == 85 + 170 * 4  # scaled to 768×768: 2×2 tiles
    assert image(1568, 1045).tokens == 85 + 170 * 6  # scaled to 1152×768: 3×2 tiles
    kept, note = images_within((image(), image(), image()), room=2 * 765)
    assert len(kept) == 2 and note == (
        "[1 attached image(s) left out: together they were too large for my context window]"
    )


def test_a_long_file_is_cut_with_a_visible_marker_and_labels_say_what_became_of_a_file() -> None:
    assert cap_text("abcdef", max_chars=4) == "abcd\n[… file cut here: 2 more characters not shown …]"
    row = {"filename": "a.pdf", "content_type": "application/pdf", "size_bytes": 9, "used": "refused", "why": "locked"}
    assert label(row) == "[attachment: a.pdf (application/pdf, 9 bytes), could not be read: locked]"
    assert label(row | {"used": "inlined"}, text="hi") == "[attachment: a.pdf (application/pdf, 9 bytes)]\nhi"


async def test_images_are_parts_of_the_user_message_and_count_in_the_budget(fake_llm: FakeLLM) -> None:
    session = vision_session(fake_llm)
    fake_llm.reply("Two squares.")
    turn = UserTurn(author="Alice", text="compare", images=(image(512, 512), image(512, 512)))
    assert "".join([d async for d in session.turn([turn])]) == "Two squares."
    request = fake_llm.requests[-1]
    assert [role for role, _ in request.image_parts] == ["user", "user"]
    assert request.messages[0]["role"] == "system" and isinstance(request.messages[0]["content"], str)
    fake_llm.reply("Still two.")
    _ = [d async for d in session.turn([UserTurn(author="Bob", text="and now?")])]
    assert len(fake_llm.requests[-1].image_parts) == 2  # the history keeps them, and pays for them


async def test_images_beyond_the_window_are_left_out_with_a_note(fake_llm: FakeLLM) -> None:
    session = vision_session(fake_llm)  # gpt-4o: a 128k window, so 200 full-size images (153k tokens) overflow it
    fake_llm.reply("Too many pictures.")
    turn = UserTurn(author="Alice", text="all my photos", images=tuple(image() for _ in range(200)))
    _ = [d async for d in session.turn([turn])]
    request = fake_llm.requests[-1]
    sent = len(request.image_parts)
    assert 0 < sent < 200
    assert sent * 765 <= (int(128_000 * 0.9) - 1024) // 2
    assert f"[{200 - sent} attached image(s) left out" in request.prompt_text


async def test_a_turn_of_several_messages_full_of_images_stays_within_the_window(fake_llm: FakeLLM) -> None:
    session = vision_session(fake_llm)  # 3 × 60 full-size images: 137,700 tokens against a 114,176 limit
    fake_llm.reply("So many.")
    turns = [UserTurn(author=name, text="mine", images=tuple(image() for _ in range(60))) for name in "ABC"]
    _ = [d async for d in session.turn(turns)]
    request = fake_llm.requests[-1]
    sent = len(request.image_parts)
    assert 120 <= sent < 180  # the two newest whole, the oldest cut down
    assert sent * 765 <= int(128_000 * 0.9) - 1024
    assert "attached image(s) left out" in request.prompt_text
