"""Splitting long replies and throttling streaming edits, as every adapter relies on."""

from __future__ import annotations

from collections.abc import AsyncIterator

from hypothesis import given, settings
from hypothesis import strategies as st

from bots.replies.render import split_message, throttled_text


def fences_balanced(chunk: str) -> bool:
    return sum(1 for line in chunk.split("\n") if line.strip().startswith("```")) % 2 == 0


def test_a_5000_character_reply_with_a_code_block_splits_into_renderable_chunks() -> None:
    prose = "\n\n".join(f"Paragraph {i}: " + "words " * 40 for i in range(6))
    code = "```python\n" + "\n".join(f"print({i})  # line {i}" for i in range(120)) + "\n```"
    text = prose + "\n\n" + code + "\n\nThat's all."
    assert len(text) > 4000
    chunks = split_message(text, limit=2000)
    assert len(chunks) >= 3
    assert all(len(c) <= 2000 for c in chunks)
    assert all(fences_balanced(c) for c in chunks)
    reopened = [c for c in chunks if c.startswith("```python")]
    assert len(reopened) >= 1
    assert chunks[-1].endswith("That's all.")
    assert "Paragraph 0:" in chunks[0] and chunks[0].rstrip().endswith("words")


def test_short_text_is_one_chunk() -> None:
    assert split_message("hello", limit=2000) == ["hello"]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab \nxyz")), max_size=3000), st.integers(min_value=40, max_value=500))
def test_split_never_exceeds_the_limit_and_loses_no_words(text: str, limit: int) -> None:
    chunks = split_message(text, limit=limit)
    assert all(len(c) <= limit for c in chunks)
    assert [w for c in chunks for w in c.split()] == text.split()


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab \n`py")), max_size=3000), st.integers(min_value=40, max_value=500))
def test_split_with_stray_fences_still_respects_the_limit(text: str, limit: int) -> None:
    assert all(len(c) <= limit for c in split_message(text, limit=limit))


async def test_streaming_edits_are_throttled_but_the_final_text_always_arrives() -> None:
    now = [0.0]

    async def deltas() -> AsyncIterator[str]:
        for _ in range(100):
            now[0] += 0.05  # 20 deltas a second for 5 seconds
            yield "x"

    snapshots = [s async for s in throttled_text(deltas(), interval_s=1.0, clock=lambda: now[0])]
    assert snapshots[0] == "x"
    assert snapshots[-1] == "x" * 100
    assert len(snapshots) <= 7
