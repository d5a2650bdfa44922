"""The composition root: settings in, a ready ThreadRouter out.

This is the one place that knows every concrete class. It opens the database and migrates it before anything
else, starts litellm's slow import on a worker thread (so adapters connect meanwhile), and hands the router its
repositories and LLM client. Adapters receive the router; nothing below this module reads settings. It also
prunes delivery records past their use, at start-up and then hourly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from agent.llm import LLMClient, LLMConfig, preload_litellm
from agent.summarize import Summarizer
from bots.config import Settings
from bots.messages import utc_now
from bots.thread_state import RouterStores
from bots.threads import ThreadRouter
from storage.db import Database, open_database
from storage.log import ThreadLog
from storage.migrations import migrate
from storage.sessions import CardStore, DeliveredEvents, SessionStore

log = logging.getLogger(__name__)

DELIVERED_EVENTS_RETENTION = timedelta(days=7)  # far beyond Slack's retries (about +0, +1, +5 minutes)
DELIVERED_EVENTS_PRUNE_INTERVAL_S = 3600.0


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
        cards, events = CardStore(db), DeliveredEvents(db)
        await prune_delivered_events(events)
        pruning = asyncio.create_task(prune_delivered_events_hourly(events), name="prune-delivered-events")
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
        try:
            yield router
        finally:
            pruning.cancel()
            await asyncio.gather(pruning, return_exceptions=True)
            await router.close()


async def prune_delivered_events(events: DeliveredEvents) -> None:
    """Drop handled delivery records older than the retention window (they only guard against redeliveries)."""
    try:
        removed = await events.prune(received_before=utc_now() - DELIVERED_EVENTS_RETENTION)
    except Exception:
        log.exception("could not prune old delivered events; trying again in an hour")
        return
    if removed:
        log.info("pruned %d delivered event record(s) older than %s", removed, DELIVERED_EVENTS_RETENTION)


async def prune_delivered_events_hourly(events: DeliveredEvents) -> None:
    while True:
        await asyncio.sleep(DELIVERED_EVENTS_PRUNE_INTERVAL_S)
        await prune_delivered_events(events)
