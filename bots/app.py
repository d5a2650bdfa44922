"""The composition root: settings in, a ready ThreadRouter out.

This is the one place that knows every concrete class. It opens the database and migrates it before anything
else, starts litellm's slow import on a worker thread (so adapters connect meanwhile), and hands the router its
repositories and LLM client. Adapters receive the router; nothing below this module reads settings. Delivery
records past their use are pruned at start-up and then hourly (``bots/operator/housekeeping.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from agent.llm import CallObserver, LLMClient, LLMConfig, preload_litellm
from agent.summarize import Summarizer
from agent.tools import ToolBox, ToolProvider
from agent.transcription import LiteLLMSpeechToText, TranscriptionConfig
from bots.config import ConfigError, Settings
from bots.files.attachments import AttachmentLimits
from bots.files.downloads import FetchPolicy
from bots.operator import metrics
from bots.operator.health import Health
from bots.operator.housekeeping import Housekeeping
from bots.operator.metrics import MeteredThreadLog
from bots.operator.usage import UsageRecorder
from bots.router.commands.models import ThreadModels
from bots.router.reply_modes import ReplyMode, ReplyModes
from bots.router.thread_state import RouterStores
from bots.router.threads import ThreadRouter
from bots.seam.messages import ThreadKey, utc_now
from bots.seam.ports import BackgroundService, ThreadOutbox
from bots.tools.approvals import ApprovalFlow
from bots.tools.tool_turns import ThreadTools
from bots.workers.ownership import ThreadOwnership
from storage import protocols
from storage.backends import Storage, open_storage

log = logging.getLogger(__name__)


def build_llm(settings: Settings, *, observers: Sequence[CallObserver] = ()) -> LLMClient:
    config = LLMConfig(
        model=settings.default_model,
        api_base=settings.llm_api_base,
        api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        timeout_s=settings.llm_timeout_s,
        function_calling=settings.llm_function_calling,
        max_output_tokens=settings.llm_max_output_tokens,
    )
    return LLMClient(config, context_window_fallback=settings.llm_context_window, observers=observers)


def build_speech_to_text(settings: Settings) -> LiteLLMSpeechToText | None:
    """Voice messages' transcription with TRANSCRIPTION_MODEL (None when unset), over the chat model's endpoint."""
    if settings.transcription_model is None:
        return None
    config = TranscriptionConfig(
        model=settings.transcription_model,
        api_base=settings.llm_api_base,
        api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        timeout_s=settings.transcription_timeout_s,
    )
    return LiteLLMSpeechToText(config)


@asynccontextmanager
async def open_storage_for(settings: Settings) -> AsyncIterator[Storage]:
    """The migrated stores of the database named by DATABASE_URL (SQLite or Postgres), closed on exit."""
    async with open_storage(settings.database_url) as storage:
        yield storage


@dataclass
class PlatformStores:
    """Stores an adapter needs beside the router's, handed over by the composition root (adapters never open
    storage): Slack's installations, OAuth states and Slack Connect channel keepers for "Add to Slack"
    (bots/slack/install/)."""

    slack_installations: protocols.SlackInstallations | None = None
    oauth_states: protocols.OAuthStates | None = None
    slack_shared_channels: protocols.SlackSharedChannels | None = None


class _RouterOutboxes:
    """The router's outboxes for flows built before the router (the approval cards)."""

    router: ThreadRouter | None = None

    def __call__(self, key: ThreadKey) -> ThreadOutbox:
        assert self.router is not None, "the router is built right after the tools"
        return self.router.outbox(key)


async def _build_tools(
    settings: Settings,
    *,
    storage: Storage,
    stores: RouterStores,
    outboxes: _RouterOutboxes,
    ownership: ThreadOwnership,
    leaving: asyncio.Event | None,
) -> tuple[ThreadTools, BackgroundService | None]:
    """The shared tools (MCP servers from MCP_CONFIG) and the per-thread ones; an approval flow for both."""
    servers: BackgroundService | None = None
    providers: list[ToolProvider] = []
    if settings.mcp_config is not None:
        from agent.mcp_config import MCPConfigError  # the SDK's import costs 0.5 s: only when configured
        from agent.mcp_servers import MCPServers

        try:
            mcp = MCPServers.from_file(settings.mcp_config)
        except MCPConfigError as exc:
            raise ConfigError(f"MCP_CONFIG is invalid: {exc}") from None
        servers, providers = mcp, [mcp]
    approvals = ApprovalFlow(
        store=storage.approvals,
        log=stores.log,
        outbox=outboxes,
        clock=utc_now,
        timeout_s=settings.approval_timeout_s,
        approvers=settings.tool_approvers,
        owners=ownership if ownership.shared else None,
        leaving=leaving,
    )
    tools = ThreadTools(
        shared=ToolBox(providers, timeout_s=settings.tool_timeout_s),
        builtins=tuple(settings.builtin_tools),
        search=storage.search,
        trail=stores.trail,
        journal=stores.journal,
        approvals=approvals,
        outbox=outboxes,
        clock=utc_now,
    )
    return tools, servers


@asynccontextmanager
async def open_router(
    settings: Settings,
    *,
    preload_model_client: bool = True,
    health: Health | None = None,
    platform_stores: PlatformStores | None = None,
    leaving: asyncio.Event | None = None,
) -> AsyncIterator[ThreadRouter]:
    """A router over the configured database and model; in-flight work is cancelled on exit.

    ``preload_model_client=False`` leaves litellm's multi-second import for the caller to start once the
    platforms are connected (``threadkeeper run`` does, so the import never delays readiness); the first model
    call waits for the import either way. ``health`` is told the database and the router, for /readyz;
    ``platform_stores`` the stores the adapters need. ``leaving``, once set, ends every turn that only waits on an
    approval card, deciding nothing (``bots/tools/approval_waits.py``): set it when shutting down, before the
    adapters' grace for in-flight answers.
    """
    if preload_model_client:
        preload_litellm()
    async with open_storage_for(settings) as storage:
        if platform_stores is not None:
            platform_stores.slack_installations = storage.slack_installations
            platform_stores.oauth_states = storage.oauth_states
            platform_stores.slack_shared_channels = storage.slack_shared_channels
        cards = storage.cards
        ownership = ThreadOwnership(
            leases=storage.leases, lease_s=settings.worker_lease_s, poll_s=settings.worker_poll_s
        )
        # With several workers, what an earlier run left is swept thread by thread as each is taken over (a
        # start-up sweep of the whole database would reset the catch-ups and approvals of live workers).
        interrupted = [] if ownership.shared else await cards.reopen_interrupted()
        if interrupted:
            log.info("%d card(s) left mid catch-up by the last run are clickable again", len(interrupted))
        erasures, events = storage.erasures, storage.events
        housekeeping = Housekeeping(
            erasures=erasures, events=events, retention_days=settings.log_retention_days, clock=utc_now
        )
        await housekeeping.run_once()
        usage = UsageRecorder(storage.usage, daily_cap=settings.user_daily_tokens)
        llm = build_llm(settings, observers=[metrics.observe_model_call, usage.observe])
        outboxes = _RouterOutboxes()
        stores = RouterStores(
            log=MeteredThreadLog(storage.log),
            joins=storage.joins,
            sessions=storage.sessions,
            cards=cards,
            events=events,
            erasures=erasures,
            trail=storage.trail,
            journal=storage.journal,
            usage=usage,
            feedback=storage.feedback,
        )
        tools, servers = await _build_tools(
            settings, storage=storage, stores=stores, outboxes=outboxes, ownership=ownership, leaving=leaving
        )
        router = ThreadRouter(
            stores=stores,
            llm=llm,
            summarizer=Summarizer(llm),
            system_prompt=settings.system_prompt,
            max_live_sessions=settings.max_live_sessions,
            interrupted_cards=interrupted,
            erasures_seen=await erasures.latest_id(),
            tools=tools,
            tool_servers=servers,
            max_tool_steps=settings.max_tool_steps,
            models=ThreadModels(llm=llm, allowed=settings.models, store=storage.thread_settings),
            admin_users=settings.admin_users,
            attachment_limits=AttachmentLimits(
                max_download_bytes=int(settings.attachment_max_mb * 1_000_000),
                download_timeout_s=settings.attachment_timeout_s,
                read_budget_s=settings.attachment_read_budget_s,
                message_read_budget_s=settings.attachment_message_read_budget_s,
                audio_max_seconds=settings.transcription_max_seconds,
                transcription_budget_s=settings.transcription_timeout_s,
            ),
            # Files come only from the platforms' file hosts and the configured API hosts: the token goes nowhere else.
            fetch_policy=FetchPolicy.for_platforms(
                slack_api_url=settings.slack_api_url, discord_api_base=settings.discord_api_base
            ),
            speech_to_text=build_speech_to_text(settings),
            ownership=ownership,
            reply_modes=ReplyModes(
                log=stores.log,
                store=storage.thread_settings,
                default=ReplyMode(settings.reply_mode),
                assistant_name="threadkeeper",  # the name the router gives the bot (ThreadRouter)
            ),
            join_history_messages=settings.join_history_messages,
        )
        outboxes.router = router
        housekeeping.start()
        if health is not None:
            health.database, health.router = storage.probe, router
        try:
            yield router
        finally:
            await housekeeping.stop()
            await router.close()
            await usage.close()
