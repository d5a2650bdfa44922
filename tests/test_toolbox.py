"""ToolBox.execute on its own: every way a call can go wrong is a result the model reads, never an exception."""

from __future__ import annotations

import asyncio
from typing import Any

from agent.tools import (
    Decision,
    ToolBox,
    ToolCall,
    ToolOutput,
    ToolSpec,
    model_tool_name,
    needs_approval,
)

SCHEMA = {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}


class Notebook:
    """A tiny in-process provider: ``read`` (read-only), ``write``, ``hang``, ``boom``, ``big``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def specs(self) -> list[ToolSpec]:
        return [
            ToolSpec("read", "Read a key.", SCHEMA, read_only=True),
            ToolSpec("write", "Write a key.", SCHEMA),
            ToolSpec("hang", "Never answers.", {"type": "object"}, read_only=True),
            ToolSpec("boom", "Raises.", {"type": "object"}, read_only=True),
            ToolSpec("big", "A huge answer.", {"type": "object"}, read_only=True),
        ]

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolOutput:
        self.calls.append((name, arguments))
        if name == "hang":
            await asyncio.sleep(60)
        if name == "boom":
            raise ValueError("kaput")
        if name == "big":
            return ToolOutput("x" * 200_000)
        return ToolOutput(f"{name} {arguments['key']}", cites=(7,))


def call(name: str, raw: str) -> ToolCall:
    return ToolCall.from_raw(id="call_1", name=name, raw_arguments=raw)


async def never_asked(call: ToolCall, spec: ToolSpec) -> Decision:
    raise AssertionError("approval was not needed")


def test_approval_rules() -> None:
    assert needs_approval(ToolSpec("a", "", {}, read_only=True, approval="always"))
    assert not needs_approval(ToolSpec("a", "", {}, read_only=False, approval="never"))
    assert not needs_approval(ToolSpec("a", "", {}, read_only=True, approval="auto"))
    assert needs_approval(ToolSpec("a", "", {}, read_only=False, approval="auto"))


def test_model_names_are_what_providers_accept() -> None:
    assert model_tool_name("git hub", "search.code") == "git_hub__search_code"
    assert len(model_tool_name("s" * 50, "t" * 50)) == 64


async def test_a_read_only_call_runs_without_approval_and_keeps_its_cites() -> None:
    result = await ToolBox([Notebook()]).execute(call("read", '{"key": "k"}'), approve=never_asked)
    assert (result.text, result.is_error, result.cites, result.approved) == ("read k", False, (7,), None)


async def test_unknown_tool_and_invalid_arguments_are_error_results() -> None:
    notebook = Notebook()
    box = ToolBox([notebook])
    unknown = await box.execute(call("nope", "{}"), approve=never_asked)
    assert unknown.is_error and "no tool named 'nope'" in unknown.text and "read" in unknown.text
    missing = await box.execute(call("read", '{"other": 1}'), approve=never_asked)
    assert missing.is_error and "'key' is a required property" in missing.text
    wrong_type = await box.execute(call("read", '{"key": 5}'), approve=never_asked)
    assert wrong_type.is_error and "at key" in wrong_type.text
    not_json = await box.execute(call("read", '{"key": '), approve=never_asked)
    assert not_json.is_error and "not valid JSON" in not_json.text
    assert notebook.calls == []


async def test_a_side_effect_asks_and_a_denial_tells_who_and_why() -> None:
    notebook = Notebook()

    async def deny(call: ToolCall, spec: ToolSpec) -> Decision:
        return Decision(approved=False, decided_by="Bob", reason="not today")

    result = await ToolBox([notebook]).execute(call("write", '{"key": "k"}'), approve=deny)
    assert result.is_error and "refused by Bob: not today" in result.text
    assert (result.approved, result.decided_by, notebook.calls) == (False, "Bob", [])
    no_approver = await ToolBox([notebook]).execute(call("write", '{"key": "k"}'), approve=None)
    assert no_approver.is_error and "refused" in no_approver.text


async def test_timeout_exception_and_huge_output_are_contained() -> None:
    box = ToolBox([Notebook()], timeout_s=0.2, result_max_tokens=100)
    hung = await box.execute(call("hang", "{}"), approve=never_asked)
    assert hung.is_error and "within 0.2 seconds" in hung.text and hung.duration_ms >= 200
    boom = await box.execute(call("boom", "{}"), approve=never_asked)
    assert boom.is_error and "ValueError: kaput" in boom.text
    big = await box.execute(call("big", "{}"), approve=never_asked)
    assert "truncated:" in big.text and len(big.text) < 1000


async def test_with_extra_adds_providers_for_one_turn_only() -> None:
    class Extra:
        def specs(self) -> list[ToolSpec]:
            return [ToolSpec("search_thread", "Search.", {"type": "object"}, read_only=True)]

        async def call(self, name: str, arguments: dict[str, Any]) -> ToolOutput:
            return ToolOutput("found")

    shared = ToolBox([Notebook()])
    turn = shared.with_extra([Extra()])
    assert "search_thread" in [s.name for s in turn.specs()]
    assert "search_thread" not in [s.name for s in shared.specs()]
    assert (await turn.execute(call("search_thread", ""), approve=never_asked)).text == "found"
