"""The tool vocabulary of a turn, and the ToolBox that runs one call safely.

A *provider* offers tools (:class:`ToolSpec`) and runs them (:class:`ToolOutput`): the MCP servers of
``agent.mcp_servers`` are one, the router's per-thread built-ins (``search_thread``) another. The model sees a
tool by its ``name``: ``SERVER__TOOL`` for an MCP tool (see :func:`model_tool_name`) or a built-in's bare name.

:meth:`ToolBox.execute` is the one place a call is checked and run, so every provider gets the same guarantees:
an unknown tool, arguments that are not a JSON object or fail the tool's JSON schema, a refused approval, a
timeout, or any exception from the provider all become an error *result* the model can read and act on; nothing
is raised into the turn or the router. Results are capped in tokens with a visible marker, because a tool (a
malicious MCP server, say) may return megabytes. A result is untrusted data: the session sends it as a ``tool``
message, never as system text.

Construction, as the composition root does it (``bots/app.py`` style)::

    # at start-up, with the other settings (MCPConfigError is a config error: print it, exit 2)
    servers = MCPServers.from_file(settings.mcp_config) if settings.mcp_config else None
    shared = ToolBox([servers] if servers else [], timeout_s=settings.tool_timeout_s)
    # once the platforms are connected; returns at once, servers connect in the background
    if servers: await servers.start()
    # per session
    session = AgentSession(..., max_tool_steps=settings.max_tool_steps)
    # per turn: the thread's built-ins (settings.builtin_tools) join the shared providers
    tools = shared.with_extra([ThreadSearch(thread)])
    async for delta in session.turn(turns, tools=tools, approve=approvals.ask, on_result=trail.record):
        ...
    # on shutdown
    if servers: await servers.stop()

``approve`` is where ``TOOL_APPROVERS`` and ``APPROVAL_TIMEOUT_S`` apply (an approval card that times out is a
``Decision(approved=False, decided_by=None, reason="no answer in time")``); ``on_result`` is where the trail
is logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import jsonschema
import jsonschema.exceptions
import jsonschema.validators

from agent.context import TRUNCATION_MARKER, TokenCount, truncate_to_tokens

log = logging.getLogger(__name__)

TOOL_TIMEOUT_S = 60.0
RESULT_MAX_TOKENS = 2_000
MAX_NAME_CHARS = 64
Approval = Literal["always", "never", "auto"]

_UNSAFE_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool as the model is offered it; ``approval`` and ``read_only`` decide whether a person must agree."""

    name: str
    description: str
    input_schema: dict[str, Any]
    read_only: bool = False
    approval: Approval = "auto"

    def for_model(self) -> dict[str, Any]:
        """The OpenAI-format ``tools`` entry litellm translates for every provider."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.input_schema},
        }


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the model asked for. ``raw_arguments`` is the JSON text as streamed; ``arguments`` its parse."""

    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str

    def for_model(self) -> dict[str, Any]:
        """The OpenAI-format ``tool_calls`` entry of the assistant message that asked for this call."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.raw_arguments}}

    @classmethod
    def from_raw(cls, *, id: str, name: str, raw_arguments: str) -> ToolCall:
        """A call whose arguments are parsed from ``raw_arguments`` (empty when they are not a JSON object)."""
        parsed = parse_arguments(raw_arguments)
        return cls(id=id, name=name, arguments=parsed if isinstance(parsed, dict) else {}, raw_arguments=raw_arguments)


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """What a provider returns. ``cites`` are the log message ids the text quotes (for forgetting)."""

    text: str
    is_error: bool = False
    cites: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolResult:
    """One finished call: what goes back to the model, and what the trail records."""

    call: ToolCall
    text: str
    is_error: bool
    duration_ms: int
    cites: tuple[int, ...] = ()
    decided_by: str | None = None  # who approved or denied; None when no approval was asked
    approved: bool | None = None  # None when no approval was asked


@dataclass(frozen=True, slots=True)
class Decision:
    """A person's (or the timeout's) answer to an approval request."""

    approved: bool
    decided_by: str | None
    reason: str = ""


Approver = Callable[[ToolCall, ToolSpec], Awaitable[Decision]]
CallHook = Callable[[ToolCall], Awaitable[None]]  # told just before a call is sent to its provider
NOT_JOURNALED_NOTE = "Error: {name} was not run: I could not record that it was starting. Nothing happened."


class ToolProvider(Protocol):
    """Something that offers tools and runs them. ``specs`` may change over time (servers come and go)."""

    def specs(self) -> list[ToolSpec]: ...

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolOutput: ...


def needs_approval(spec: ToolSpec) -> bool:
    """``always``: yes; ``never``: no; ``auto``: yes unless the tool is read-only."""
    if spec.approval == "always":
        return True
    if spec.approval == "never":
        return False
    return not spec.read_only


def model_tool_name(server: str, tool: str) -> str:
    """``SERVER__TOOL`` as providers accept it: ``^[a-zA-Z0-9_-]{1,64}$`` (other characters become ``_``)."""
    name = _UNSAFE_NAME_CHARS.sub("_", f"{server}__{tool}")[:MAX_NAME_CHARS]
    return name or "tool"


def parse_arguments(raw: str) -> dict[str, Any] | str:
    """The arguments object of a call, or a sentence saying why ``raw`` is not one. Empty text is ``{}``."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return f"the arguments are not valid JSON ({exc.msg} at position {exc.pos})"
    if not isinstance(value, dict):
        return f"the arguments must be a JSON object, not {type(value).__name__}"
    return value


def _rough_count(text: str) -> int:
    return len(text) // 4 + 1


class ToolBox:
    """The tools of one turn: providers combined, each call validated, approved, timed out, capped and timed."""

    def __init__(
        self,
        providers: Sequence[ToolProvider] = (),
        *,
        timeout_s: float = TOOL_TIMEOUT_S,
        result_max_tokens: int = RESULT_MAX_TOKENS,
    ) -> None:
        self._providers = tuple(providers)
        self.timeout_s = timeout_s
        self.result_max_tokens = result_max_tokens
        self._validators: dict[str, tuple[str, Any]] = {}

    def with_extra(self, providers: Sequence[ToolProvider]) -> ToolBox:
        """This box plus ``providers`` (a thread's built-ins), same limits; this box is left as it is."""
        box = ToolBox(
            [*self._providers, *providers], timeout_s=self.timeout_s, result_max_tokens=self.result_max_tokens
        )
        box._validators = self._validators
        return box

    def wrapped(self, wrap: Callable[[ToolProvider], ToolProvider]) -> ToolBox:
        """This box with every provider wrapped, same limits (the router announces each call this way)."""
        box = ToolBox(
            [wrap(p) for p in self._providers], timeout_s=self.timeout_s, result_max_tokens=self.result_max_tokens
        )
        box._validators = self._validators
        return box

    def specs(self) -> list[ToolSpec]:
        """Every tool on offer now; when two providers offer one name, the first provider's wins."""
        return [spec for spec, _provider in self._index().values()]

    def _index(self) -> dict[str, tuple[ToolSpec, ToolProvider]]:
        index: dict[str, tuple[ToolSpec, ToolProvider]] = {}
        for provider in self._providers:
            try:
                specs = provider.specs()
            except Exception:
                log.exception("a tool provider failed to list its tools; leaving them out")
                continue
            for spec in specs:
                index.setdefault(spec.name, (spec, provider))
        return index

    async def execute(
        self,
        call: ToolCall,
        *,
        approve: Approver | None,
        count: TokenCount | None = None,
        on_start: CallHook | None = None,
    ) -> ToolResult:
        """Run ``call``; every failure is an error result for the model, never an exception.

        ``approve`` is asked when :func:`needs_approval` says so (no approver means the call is refused);
        ``count`` is the model's token counter for the result cap (a rough estimate without one). ``on_start``
        (the turn journal's ``running`` row) returns before the call is sent; when it fails, the call is not run.
        """
        started = time.monotonic()
        found = self._index().get(call.name)
        decision: Decision | None = None
        if found is None:
            known = ", ".join(sorted(self._index())) or "none"
            output = ToolOutput(f"Error: there is no tool named {call.name!r}. Available tools: {known}.", True)
        elif problem := self._argument_problem(call, found[0]):
            output = ToolOutput(f"Error: invalid arguments for {call.name}: {problem}. The tool did not run.", True)
        else:
            spec, provider = found
            if needs_approval(spec):
                decision = await self._ask(call, spec, approve)
            if decision is not None and not decision.approved:
                output = ToolOutput(_refusal(call, decision), is_error=True)
            elif not await _started(call, on_start):
                output = ToolOutput(NOT_JOURNALED_NOTE.format(name=call.name), is_error=True)
            else:
                output = await self._run(call, provider)
        text = await self._capped(output.text, count=count or _rough_count)
        return ToolResult(
            call=call,
            text=text,
            is_error=output.is_error,
            duration_ms=int((time.monotonic() - started) * 1000),
            cites=output.cites,
            decided_by=decision.decided_by if decision else None,
            approved=decision.approved if decision else None,
        )

    def _argument_problem(self, call: ToolCall, spec: ToolSpec) -> str | None:
        parsed = parse_arguments(call.raw_arguments) if call.raw_arguments.strip() else call.arguments
        if isinstance(parsed, str):
            return parsed
        validator = self._validator(spec)
        if validator is None:
            return None
        error = jsonschema.exceptions.best_match(validator.iter_errors(parsed))
        if error is None:
            return None
        where = "/".join(str(part) for part in error.absolute_path)
        return f"{error.message}" + (f" (at {where})" if where else "")

    def _validator(self, spec: ToolSpec) -> Any:
        key = json.dumps(spec.input_schema, sort_keys=True, default=str)
        cached = self._validators.get(spec.name)
        if cached is not None and cached[0] == key:
            return cached[1]
        cls = jsonschema.validators.validator_for(spec.input_schema)
        try:
            cls.check_schema(spec.input_schema)
            validator: Any = cls(spec.input_schema)
        except jsonschema.exceptions.SchemaError:
            log.warning("tool %s has an invalid input schema; its arguments are not validated", spec.name)
            validator = None
        self._validators[spec.name] = (key, validator)
        return validator

    async def _ask(self, call: ToolCall, spec: ToolSpec, approve: Approver | None) -> Decision:
        if approve is None:
            return Decision(approved=False, decided_by=None, reason="no one can approve tool calls here")
        try:
            return await approve(call, spec)
        except Exception:
            log.exception("asking for approval of %s failed; refusing the call", call.name)
            return Decision(approved=False, decided_by=None, reason="the approval request failed")

    async def _run(self, call: ToolCall, provider: ToolProvider) -> ToolOutput:
        arguments = parse_arguments(call.raw_arguments) if call.raw_arguments.strip() else call.arguments
        assert isinstance(arguments, dict)
        try:
            return await asyncio.wait_for(provider.call(call.name, arguments), timeout=self.timeout_s)
        except TimeoutError:
            log.warning("tool %s timed out after %gs", call.name, self.timeout_s)
            return ToolOutput(f"Error: {call.name} did not answer within {self.timeout_s:g} seconds.", True)
        except Exception as exc:
            log.warning("tool %s failed: %s", call.name, type(exc).__name__, exc_info=True)
            return ToolOutput(f"Error: {call.name} failed ({type(exc).__name__}: {str(exc)[:300]}).", True)

    async def _capped(self, text: str, *, count: TokenCount) -> str:
        """``text`` within ``result_max_tokens``; a huge text is first cut by characters, off the event loop."""
        limit = self.result_max_tokens
        char_bound = limit * 8
        if len(text) > char_bound:
            head, tail = text[: char_bound * 3 // 4], text[len(text) - char_bound // 4 :]
            text = head + TRUNCATION_MARKER.format(omitted=len(text) - len(head) - len(tail)) + tail
        if len(text) <= limit:  # a token is at least one character
            return text
        return await asyncio.to_thread(truncate_to_tokens, text, max_tokens=limit, count=count)


def one_line(text: str, *, limit: int = 200) -> str:
    """``text`` on one line, whitespace collapsed, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def call_line(*, name: str, raw_arguments: str, result: str, is_error: bool) -> str:
    """One tool call as a summary transcript records it: name, arguments and a one-line result."""
    outcome = "error" if is_error else "result"
    return f"called tool {name} with {one_line(raw_arguments or '{}', limit=300)}; {outcome}: {one_line(result)}"


async def _started(call: ToolCall, on_start: CallHook | None) -> bool:
    """Whether ``on_start`` recorded the call (a call that may have effects runs only once it is recorded)."""
    if on_start is None:
        return True
    try:
        await on_start(call)
    except Exception:
        log.exception("could not record that %s is starting; it is not run", call.name)
        return False
    return True


def _refusal(call: ToolCall, decision: Decision) -> str:
    who = decision.decided_by or "no one (the request went unanswered)"
    why = f": {decision.reason}" if decision.reason else ""
    return f"The call to {call.name} was refused by {who}{why}. It did not run; do not retry it unless asked."


__all__ = [
    "RESULT_MAX_TOKENS",
    "TOOL_TIMEOUT_S",
    "Approval",
    "Approver",
    "CallHook",
    "Decision",
    "ToolBox",
    "ToolCall",
    "ToolOutput",
    "ToolProvider",
    "ToolResult",
    "ToolSpec",
    "call_line",
    "model_tool_name",
    "needs_approval",
    "one_line",
    "parse_arguments",
]
