"""Which model a thread answers with: its own choice (the ``model`` command) when still allowed, else the default.

The operator's allowlist is ``LLM_MODELS`` (the first is the default). A choice is stored in SQLite
(``storage/thread_settings.py``), so it survives restarts and catch-ups: every session the router starts or
seeds asks :meth:`ThreadModels.model_for` first. A stored choice the operator has since removed from the list
falls back to the default, with a log line saying so. One :class:`~agent.llm.LLMClient` per model, shared by all
threads that use it. Summaries (the catch-up one, compaction) are written by the default model whatever the
thread answers with: one summarizer bounds their concurrency for the whole bot.
"""

from __future__ import annotations

import logging
from datetime import datetime

from agent.llm import LLMClient
from storage.protocols import ThreadSettings

log = logging.getLogger(__name__)


class ThreadModels:
    """The allowed models, each thread's choice among them, and a client per model."""

    def __init__(self, *, llm: LLMClient, allowed: tuple[str, ...] = (), store: ThreadSettings | None = None) -> None:
        self._store = store
        self._allowed = allowed or (llm.model,)
        self._clients: dict[str, LLMClient] = {llm.model: llm}

    @property
    def allowed(self) -> tuple[str, ...]:
        return self._allowed

    @property
    def default(self) -> str:
        return self._allowed[0]

    async def model_for(self, thread_id: int) -> str:
        """The model the thread's next session uses."""
        chosen = None if self._store is None else await self._store.model(thread_id=thread_id)
        if chosen is None or chosen in self._allowed:
            return chosen or self.default
        log.info("thread %s chose %s, which LLM_MODELS no longer lists; using %s", thread_id, chosen, self.default)
        return self.default

    def client(self, model: str) -> LLMClient:
        if model not in self._clients:
            self._clients[model] = next(iter(self._clients.values())).with_model(model)
        return self._clients[model]

    def resolve(self, name: str) -> str | None:
        """The allowed model ``name`` means: its exact string, or the one model whose part after the provider it is."""
        wanted = name.strip().lower()
        exact = [m for m in self._allowed if m.lower() == wanted]
        short = [m for m in self._allowed if m.lower().split("/", 1)[-1] == wanted]
        found = exact or short
        return found[0] if len(found) == 1 else None

    async def choose(self, *, thread_id: int, model: str, by_id: str, now: datetime) -> None:
        if self._store is None:
            raise RuntimeError("no thread settings store: model choices cannot be kept")
        await self._store.set_model(thread_id=thread_id, model=model, changed_by_id=by_id, now=now)
