"""The composition root: settings in, a ready ThreadRouter out.

This is the one place that knows every concrete class. It opens the database and migrates it before anything
else, starts litellm's slow import on a worker thread (so adapters connect meanwhile), and hands the router its
repositories and LLM client. Adapters receive the router; nothing below this module reads settings. Delivery
records past their use are pruned at start-up and then hourly (``bots/delivery_records.py``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from agent.llm import LLMClient, LLMConfig, preload_litellm
from agent.summarize import Summarizer
from bots.config import Settings
from bots.delivery_records import DeliveryRecordPruning
from bots.messages import utc_now
from bots.thread_state import RouterStores
from bots.threads import ThreadRouter
from storage.db import Database, open_database
from storage.log import ThreadLog
from storage.migrations import migrate
from storage.sessions import CardStore, DeliveredEvents, SessionStore

log = logging.getLogger(__name__)


def build_llm(settings: Settings) -> LLMClient:
    config = LLMConfig(
        model=settings.llm_model,
        api_base=settings.llm_api_base,
        api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        timeout_s=settings.llm_timeout_s,
    )
    return LLMClient(config, context_window_fallback=settings.llm_context_window)


@asynccontextmanager
async def open_database_for(settings: Settings) -> AsyncIterator[Database]:
    """The migrated database named by DATABASE_URL, closed on exit."""
    db = await open_database(settings.database_path)
    try:
        applied = await migrate(db)
        if applied:
            log.info("database %s migrated: %s", settings.database_path, ", ".join(applied))
        yield db
    finally:
        await db.close()


@asynccontextmanager
async def open_router(settings: Settings, *, preload_model_client: bool = True) -> AsyncIterator[ThreadRouter]:
    """A router over the configured database and model; in-flight work is cancelled on exit.

    ``preload_model_client=False`` leaves litellm's multi-second import for the caller to start once the
    platforms are connected (``threadkeeper run`` does, so the import never delays readiness); the first model
    call waits for the import either way.
    """
    if preload_model_client:
        preload_litellm()
    async with open_database_for(settings) as db:
        cards = CardStore(db)
        events = DeliveredEvents(db)
        pruning = DeliveryRecordPruning(events=events, clock=utc_now)
        await pruning.run_once()
        interrupted = await cards.reopen_interrupted()
        if interrupted:
            log.info("%d card(s) left mid catch-up by the last run are clickable again", len(interrupted))
        llm = build_llm(settings)
        router = ThreadRouter(
            stores=RouterStores(log=ThreadLog(db), sessions=SessionStore(db), cards=cards, events=events),
            llm=llm,
            summarizer=Summarizer(llm),
            system_prompt=settings.system_prompt,
            max_live_sessions=settings.max_live_sessions,
            interrupted_cards=interrupted,
        )
        pruning.start()
        try:
            yield router
        finally:
            await pruning.stop()
            await router.close()
