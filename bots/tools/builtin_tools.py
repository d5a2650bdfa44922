"""Built-in tools: ``search_thread``, exact recall of the thread's own log.

A catch-up summary is short by design and may drop a detail; ``search_thread`` lets the model quote it exactly
instead of guessing. It searches only the thread the turn belongs to (``storage/sqlite/search.py``,
``storage/postgres/search.py``), never finds a deleted message, and reports the log ids it quotes, so forgetting
a message also removes it from the session's tool results and from the trail.
"""

from __future__ import annotations

from typing import Any

from agent.tools import ToolOutput, ToolSpec
from bots.files.voice import said
from storage.protocols import ThreadSearch

SEARCH_THREAD = "search_thread"
MAX_RESULTS = 20
EXCERPT_CHARS = 1_500

SEARCH_SPEC = ToolSpec(
    name=SEARCH_THREAD,
    description=(
        "Search this thread's own message log (everything people and you wrote in this thread, including what "
        "came before a restart) and return the best matching messages with author, time and exact text. Use it "
        "to quote a detail exactly, e.g. a number, a name or a decision, instead of relying on memory."
    ),
    input_schema={
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "description": "words to look for"},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS, "default": 5},
        },
        "required": ["query"],
        "additionalProperties": False,
    },
    read_only=True,
    approval="never",
)


class SearchThreadTool:
    """``search_thread`` for one thread, as an ``agent.tools.ToolProvider``."""

    def __init__(self, *, search: ThreadSearch, thread_id: int) -> None:
        self._search = search
        self._thread_id = thread_id

    def specs(self) -> list[ToolSpec]:
        return [SEARCH_SPEC]

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolOutput:
        query = str(arguments.get("query", ""))
        limit = int(arguments.get("limit", 5))
        hits = await self._search.search(thread_id=self._thread_id, query=query, limit=limit)
        if not hits:
            return ToolOutput(f"No message in this thread matches {query!r}.")
        lines = []
        for hit in hits:
            who = f"{hit.author_name} (you)" if hit.role == "assistant" else hit.author_name
            found = " ".join(said(hit.content, hit.transcript))
            text = found if len(found) <= EXCERPT_CHARS else found[:EXCERPT_CHARS] + " […]"
            lines.append(f"[{hit.sent_utc}] {who}: {text}")
        return ToolOutput("\n".join(lines), cites=tuple(hit.message_id for hit in hits))
