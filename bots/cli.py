"""``threadkeeper``: run the bots, chat in a terminal, export or forget a thread.

Configuration errors end here as one paragraph on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from agent.llm import preload_litellm
from bots.app import PlatformStores, open_router, open_storage_for
from bots.config import ConfigError, Settings, load_settings
from bots.operator.check import preflight, run_check
from bots.operator.export import as_json, as_markdown
from bots.operator.health import Health, serve_health
from bots.operator.log_escape import escape_controls
from bots.operator.logs import configure_logging
from bots.operator.redaction import configured_secrets
from bots.operator.usage import usage_table
from bots.router.threads import ThreadRouter
from bots.seam.messages import ThreadKey, utc_now
from bots.seam.ports import PlatformAdapter
from storage.backends import (
    Backend,
    DatabaseUnavailable,
    UnsupportedDatabaseURL,
    backend_of,
    database_path_from_url,
    describe_url,
)
from storage.protocols import ThreadLog
from storage.records import Grouping, ThreadRecord
from storage.sqlite.lock import DatabaseInUse, exclusive_database_lock

log = logging.getLogger("threadkeeper")

CHAT_LOG_NAME = "threadkeeper-chat.log"
NOTHING_TO_RUN = (
    "No chat platform is configured, so there is nothing to run. Set DISCORD_TOKEN to run the Discord bot, "
    "and/or SLACK_BOT_TOKEN with SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode) to run the "
    "Slack bot (or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET to install it in many workspaces), in the environment "
    "or in a .env file (see .env.example). To try the bot without an account, "
    "run: threadkeeper chat"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="threadkeeper", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run every bot whose credentials are set")
    chat = commands.add_parser("chat", help="chat with the bot in this terminal")
    chat.add_argument("--thread", default="main", help="thread name; the same name continues a thread")
    export = commands.add_parser("export", help="print a thread's log")
    export.add_argument("thread", help="thread id, title, or full key platform:workspace:channel:thread")
    export.add_argument("--format", choices=["md", "json"], default="md")
    forget = commands.add_parser("forget", help="purge a thread's log, or one person's messages everywhere")
    target = forget.add_mutually_exclusive_group(required=True)
    target.add_argument("thread", nargs="?", help="thread id, title, or full key platform:workspace:channel:thread")
    target.add_argument("--user", metavar="PLATFORM:USER_ID", help="erase this person's messages in every thread")
    commands.add_parser("check", help="check the settings, database, model and platforms; change nothing")
    move = commands.add_parser("migrate-db", help="copy a whole SQLite log into an empty Postgres database")
    move.add_argument("--from", dest="source", required=True, metavar="sqlite:///PATH", help="the SQLite log")
    move.add_argument("--to", dest="target", required=True, metavar="postgresql://...", help="an empty database")
    stats = commands.add_parser("stats", help="print tokens and cost of answers and summaries")
    stats.add_argument("--since", type=date.fromisoformat, help="only from this UTC day on (YYYY-MM-DD)")
    stats.add_argument("--by", choices=[g.value for g in Grouping], default=Grouping.DAY.value)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check":
        return asyncio.run(run_check(sys.stdout))
    if args.command == "migrate-db":
        return migrate_db(args.source, args.target)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"threadkeeper: {exc}", file=sys.stderr)
        return 2
    # `run` logs at LOG_LEVEL to stderr or LOG_FILE. `chat` keeps the terminal for the conversation: its log
    # lines go to a file, named once here, never into an answer. The other commands only warn.
    log_file = chat_log_file(settings) if args.command == "chat" else settings.log_file
    level = settings.log_level if args.command in ("run", "chat") else "WARNING"
    try:
        configure_logging(
            secrets=configured_secrets(settings), level=level, log_format=settings.log_format, path=log_file
        )
        if args.command == "chat":
            print(f"threadkeeper chat: log lines go to {log_file}", file=sys.stderr, flush=True)
        if args.command in ("run", "chat"):
            # One bot per SQLite file (export and forget only read or purge, and stay usable meanwhile); any
            # number of workers share a Postgres database.
            command = " ".join(["threadkeeper", *(sys.argv[1:] if argv is None else argv)])
            with _single_process_lock(settings, command=command):
                if args.command == "run":
                    return asyncio.run(run(settings))
                return asyncio.run(_chat(settings, args.thread))
        if args.command == "stats":
            return asyncio.run(usage_stats(settings, since=args.since, by=Grouping(args.by)))
        if args.command == "export":
            return asyncio.run(export(settings, args.thread, args.format))
        if args.user:
            return asyncio.run(forget_user(settings, args.user))
        return asyncio.run(forget(settings, args.thread))
    except (ConfigError, DatabaseInUse, DatabaseUnavailable) as exc:
        print(f"threadkeeper: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def chat_log_file(settings: Settings) -> Path:
    """LOG_FILE, else ``threadkeeper-chat.log`` in the database's folder (``data/`` with Postgres)."""
    if settings.log_file is not None:
        return settings.log_file
    folder = settings.database_path.parent if settings.database_backend is Backend.SQLITE else Path("data")
    return folder / CHAT_LOG_NAME


def _single_process_lock(settings: Settings, *, command: str) -> contextlib.AbstractContextManager[object]:
    if settings.database_backend is Backend.SQLITE:
        return exclusive_database_lock(settings.database_path, command=command)
    return contextlib.nullcontext()


def _adapters(settings: Settings, router: ThreadRouter, stores: PlatformStores) -> list[PlatformAdapter]:
    adapters: list[PlatformAdapter] = []
    if settings.discord_enabled:
        from bots.discord import DiscordAdapter

        adapters.append(DiscordAdapter(settings=settings, router=router))
    if settings.slack_enabled:
        from bots.slack import SlackAdapter

        adapters.append(
            SlackAdapter(
                settings=settings,
                router=router,
                installations=stores.slack_installations,
                oauth_states=stores.oauth_states,
                shared_channels=stores.slack_shared_channels,
            )
        )
    return adapters


async def run(settings: Settings) -> int:
    """Start every configured adapter, wait for SIGTERM/SIGINT, stop them cleanly."""
    if not (settings.discord_enabled or settings.slack_enabled):
        raise ConfigError(NOTHING_TO_RUN)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    health = Health()
    stores = PlatformStores()
    async with (
        serve_health(health, port=settings.metrics_port, host=settings.metrics_host),
        # SIGTERM also ends, at once, the turns that only wait on an approval card: the card outlives the process.
        open_router(
            settings, preload_model_client=False, health=health, platform_stores=stores, leaving=stop
        ) as router,
    ):
        adapters = _adapters(settings, router, stores)
        health.expected = tuple(adapter.name for adapter in adapters)
        started: list[PlatformAdapter] = []
        try:
            for adapter in adapters:
                await adapter.start()
                started.append(adapter)
                health.adapters[adapter.name] = adapter
                await router.resume(adapter.name)
                log.info("%s adapter ready", adapter.name)
            # Only now: importing litellm holds the GIL for seconds and would slow every connect above.
            preload_litellm()
            await preflight(settings)
            await stop.wait()
            log.info("shutting down")
        finally:
            for adapter in reversed(started):
                try:
                    await asyncio.wait_for(adapter.stop(), timeout=30)
                except Exception:
                    log.exception("%s adapter did not stop cleanly", adapter.name)
    return 0


async def _chat(settings: Settings, thread: str) -> int:
    from bots.console.adapter import chat

    async with open_router(settings) as router:
        await preflight(settings)
        await chat(router, thread_name=thread)
    return 0


async def _resolve(log_: ThreadLog, name: str) -> ThreadRecord:
    try:
        key = ThreadKey.parse(name)
    except ValueError:
        matches = await log_.find_threads(name=name)
    else:
        thread_id = await log_.find_thread(
            platform=key.platform, workspace=key.workspace, channel=key.channel, thread=key.thread
        )
        found = None if thread_id is None else await log_.thread(thread_id=thread_id)
        matches = [found] if found else []
    if not matches:
        raise ConfigError(f"No thread named {name!r} in the log. Use a thread id, a title, or a full key.")
    if len(matches) > 1:
        keys = ", ".join(f"{m.platform}:{m.workspace}:{m.channel}:{m.thread}" for m in matches)
        raise ConfigError(f"{name!r} names several threads; use one full key: {keys}")
    return matches[0]


async def export(settings: Settings, name: str, fmt: str) -> int:
    """Print a thread's log, with its tool trail, as Markdown or JSON (``bots/operator/export.py``)."""
    async with open_storage_for(settings) as storage:
        thread = await _resolve(storage.log, name)
        messages = await storage.log.all_messages(thread_id=thread.id)
        trail = await storage.trail.for_thread(thread_id=thread.id)
        feedback = await storage.feedback.for_thread(thread_id=thread.id)
    render = as_json if fmt == "json" else as_markdown
    print(render(thread, messages, trail, feedback))
    return 0


async def usage_stats(settings: Settings, *, since: date | None, by: Grouping) -> int:
    start = None if since is None else datetime(since.year, since.month, since.day, tzinfo=UTC)
    async with open_storage_for(settings) as storage:
        totals = await storage.usage.totals(by=by, since=start)
    print(usage_table(totals, by=by))
    return 0


async def forget(settings: Settings, name: str) -> int:
    """Purge a thread; a bot running on the same database drops its session within seconds (the journal)."""
    async with open_storage_for(settings) as storage:
        thread = await _resolve(storage.log, name)
        count = await storage.erasures.forget_thread(thread_id=thread.id, now=utc_now())
    print(f"Forgot thread {escape_controls(thread.title or thread.thread)}: {count} message(s) purged.")
    return 0


async def forget_user(settings: Settings, who: str) -> int:
    """Erase one person's messages in every thread of a platform (the right to erasure)."""
    platform, _, user_id = who.partition(":")
    if not platform or not user_id:
        raise ConfigError(
            f"--user takes PLATFORM:USER_ID, e.g. slack:U012AB3CD or discord:80351110224678912 (got {who!r})"
        )
    async with open_storage_for(settings) as storage:
        erased = await storage.erasures.forget_user(platform=platform, user_id=user_id, now=utc_now())
    if not erased:
        print(f"No messages of {who} in the log; nothing removed.")
        return 0
    for thread in erased:
        print(f"Erased {thread.messages} message(s) in thread {escape_controls(thread.title or thread.thread)}.")
    total = sum(t.messages for t in erased)
    print(f"Erased {total} message(s) of {who} in {len(erased)} thread(s); summaries that covered them are gone too.")
    return 0


def migrate_db(source: str, target: str) -> int:
    """Copy a SQLite log into an empty Postgres database (``storage/transfer.py``), holding the file's lock."""
    from storage.transfer import TransferRefused, copy_sqlite_to_postgres

    try:
        if backend_of(source) is not Backend.SQLITE or backend_of(target) is not Backend.POSTGRES:
            raise ConfigError("migrate-db copies --from a sqlite:/// URL --to a postgresql:// URL")
        path = database_path_from_url(source)
        with exclusive_database_lock(path, command="threadkeeper migrate-db"):
            report = asyncio.run(copy_sqlite_to_postgres(path, target))
    except (ConfigError, DatabaseInUse, DatabaseUnavailable, TransferRefused, UnsupportedDatabaseURL) as exc:
        print(f"threadkeeper: {exc}", file=sys.stderr)
        return 2
    for table, count in report.copied.items():
        print(f"{table}: {count} row(s)")
    print(
        f"Copied {sum(report.copied.values())} row(s) from {source} to {describe_url(target)}, ids kept. "
        f"Set DATABASE_URL to the Postgres URL to run on it; the SQLite file stays as it is."
    )
    return 0
