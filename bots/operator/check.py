"""``threadkeeper check``: every configured part, checked without changing anything, one line each.

Each check is a small coroutine returning :class:`Check` lines: ✓ with what was found, or ✗ with what to do.
The command exits 0 only when every line is ✓. Checks that depend on an earlier one (the model request needs
its key, Discord's intent needs a valid token) are skipped with the earlier ✗ standing for them.

``threadkeeper run`` and ``chat`` run :func:`preflight`, the cheap part (settings, then the model's provider
and keys, no request): a missing key stops them with the fix before the first prompt, not an answer of "try
again" after it.

The Slack scopes are compared with ``REQUIRED_SCOPES``, which tests/slack/test_manifest.py holds equal to
slack-manifest.yml's bot scopes (the manifest is not shipped with an installed package).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TextIO

import aiohttp

from agent.llm import LLMClient, LLMError
from bots.app import build_llm, build_speech_to_text
from bots.config import ConfigError, Settings, load_settings
from bots.operator.log_escape import escape_controls
from bots.operator.redaction import Redactor, configured_secrets
from storage.backends import Backend, describe_url
from storage.sqlite.health import inspect_database

MIN_FREE_BYTES = 100 * 1024 * 1024
DISCORD_API = "https://discord.com/api/v10"
GATEWAY_MESSAGE_CONTENT = 1 << 19
GATEWAY_MESSAGE_CONTENT_LIMITED = 1 << 18
HTTP_TIMEOUT_S = 10
ONE_TOKEN = [{"role": "user", "content": "Reply with the single word: ok"}]


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None

    def line(self) -> str:
        if self.ok:
            return escape_controls(f"✓ {self.name}: {self.detail}")  # names from servers, errors from providers
        return escape_controls(f"✗ {self.name}: {self.detail}") + (
            f"\n    fix: {escape_controls(self.fix)}" if self.fix else ""
        )


def passed(name: str, detail: str) -> Check:
    return Check(name, True, detail)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name, False, detail, fix)


# -- the command ------------------------------------------------------------------------------------------------


async def run_check(out: TextIO, *, settings: Settings | None = None) -> int:
    """Print every check's line to ``out``; 0 when all passed, 1 otherwise."""
    if settings is None:
        try:
            settings = load_settings()
        except ConfigError as exc:
            print(failed("settings", "invalid", str(exc)).line(), file=out)
            return 1
    print(passed("settings", "valid").line(), file=out, flush=True)
    sections: list[Callable[[Settings], Awaitable[list[Check]]]] = [check_database, check_model]
    if settings.discord_enabled:
        sections.append(check_discord)
    if settings.slack_enabled:
        sections.append(check_slack)
    if settings.mcp_config is not None:
        sections.append(check_mcp_servers)
    redact = Redactor(configured_secrets(settings))  # error texts can quote a key back; the report never does
    ok = True
    # The model checks print their own ✗ with the fix; the client's own error log would only repeat it.
    llm_log = logging.getLogger("agent.llm")
    level = llm_log.level
    llm_log.setLevel(logging.CRITICAL)
    try:
        for section in sections:
            for check in await section(settings):
                ok = ok and check.ok
                print(redact(check.line()), file=out, flush=True)
    finally:
        llm_log.setLevel(level)
    if not (settings.discord_enabled or settings.slack_enabled):
        print("· platforms: none configured (set DISCORD_TOKEN and/or SLACK_BOT_TOKEN for `run`)", file=out)
    return 0 if ok else 1


async def preflight(settings: Settings) -> None:
    """The cheap start-up check of ``run`` and ``chat``: a ConfigError naming the fix when the model cannot work."""
    default = build_llm(settings)
    for model in settings.models:  # LLM_MODELS: a thread may switch to any of them
        problem = await default.with_model(model).setup_problem()
        if problem is not None:
            _, fix = problem
            where = " (listed in LLM_MODELS)" if settings.llm_models else ""
            raise ConfigError(f"The model {model}{where} cannot be used: {fix}. Run `threadkeeper check` for more.")
    speech = build_speech_to_text(settings)
    problem_of_speech = None if speech is None else await speech.setup_problem()
    if problem_of_speech is not None:
        raise ConfigError(f"TRANSCRIPTION_MODEL={settings.transcription_model} cannot be used: {problem_of_speech}.")


async def check_database(settings: Settings) -> list[Check]:
    if settings.database_backend is Backend.POSTGRES:
        return await check_postgres(settings)
    report = await inspect_database(settings.database_path)
    path = settings.database_path
    checks: list[Check] = []
    if report.error is not None:
        return [
            failed(
                "database",
                f"{path} cannot be read: {report.error}",
                f"check the file and DATABASE_URL={settings.database_url}",
            )
        ]
    if not report.writable:
        checks.append(
            failed("database", f"{path} is not writable by this user", "fix the file's or folder's permissions")
        )
    elif not report.exists:
        checks.append(passed("database", f"{path} does not exist yet; the first start creates it (0600)"))
    elif report.integrity != "ok":
        checks.append(
            failed(
                "database",
                f"{path} failed PRAGMA integrity_check: {report.integrity}",
                "restore it from a backup, or recover it with sqlite3's .recover",
            )
        )
    else:
        checks.append(passed("database", f"{path} opens and passes PRAGMA integrity_check"))
    if report.unknown:
        checks.append(
            failed(
                "migrations",
                f"the database has migrations this version does not know: {', '.join(report.unknown)}",
                "run the newer threadkeeper that wrote it, or restore an older backup",
            )
        )
    elif report.pending and report.exists:
        checks.append(passed("migrations", f"the next start applies {', '.join(report.pending)}"))
    else:
        checks.append(passed("migrations", "current" if report.exists else "all apply on the first start"))
    free_mb = report.free_bytes // (1024 * 1024)
    if report.free_bytes < MIN_FREE_BYTES:
        checks.append(
            failed("disk", f"{free_mb} MB free next to {path}", f"free at least {MIN_FREE_BYTES // 2**20} MB there")
        )
    else:
        checks.append(passed("disk", f"{free_mb:,} MB free next to {path}"))
    return checks


async def check_postgres(settings: Settings) -> list[Check]:
    from storage.postgres.health import inspect_postgres  # psycopg only when Postgres is configured

    where = describe_url(settings.database_url)
    report = await inspect_postgres(settings.database_url)
    if report.error is not None:
        return [
            failed(
                "database",
                f"{where} cannot be reached: {report.error}",
                "check the server, the credentials and DATABASE_URL",
            )
        ]
    if report.read_only:
        return [failed("database", f"{where} is a read-only standby", "point DATABASE_URL at the primary")]
    checks = [passed("database", f"{where} answers (Postgres {report.server_version})")]
    if report.unknown:
        checks.append(
            failed(
                "migrations",
                f"the database has migrations this version does not know: {', '.join(report.unknown)}",
                "run the newer threadkeeper that wrote it, or restore an older backup",
            )
        )
    elif report.pending:
        checks.append(passed("migrations", f"the next start applies {', '.join(report.pending)}"))
    else:
        checks.append(passed("migrations", "current"))
    return checks


# -- model ------------------------------------------------------------------------------------------------------


async def check_model(settings: Settings) -> list[Check]:
    llm = build_llm(settings)
    model = llm.model
    problem = await llm.setup_problem()
    if problem is not None:
        return [failed("model keys", f"{model} cannot be called", problem[1])]
    checks = [passed("model keys", f"litellm has what {model} needs")]
    single = LLMClient(
        dataclasses.replace(llm.config, max_tries=1), context_window_fallback=llm.context_window_fallback
    )
    started = time.monotonic()
    try:
        await single.complete(ONE_TOKEN, max_tokens=1)
    except LLMError as exc:
        checks.append(failed("model request", f"{model} failed: {exc}", await single.fix(exc.kind)))
    else:
        checks.append(
            passed("model request", f"{model} answered a one-token request in {time.monotonic() - started:.2f} s")
        )
    known = await llm.known_window()
    if known:
        checks.append(passed("context window", f"{known:,} tokens (litellm's model map)"))
    elif "llm_context_window" in settings.model_fields_set:
        checks.append(passed("context window", f"LLM_CONTEXT_WINDOW={settings.llm_context_window:,} tokens"))
    else:
        checks.append(
            failed(
                "context window",
                f"litellm does not know {model}'s window; {settings.llm_context_window:,} tokens is assumed",
                "set LLM_CONTEXT_WINDOW to the model's context window in tokens",
            )
        )
    return checks


# -- Discord ----------------------------------------------------------------------------------------------------


async def check_discord(settings: Settings) -> list[Check]:

    from bots.discord.adapter import INTENT_MISSING, invite_url

    assert settings.discord_token is not None
    base = (settings.discord_api_base or DISCORD_API).rstrip("/")
    headers = {"Authorization": f"Bot {settings.discord_token.get_secret_value()}"}
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as http:
        try:
            status, me = await _get_json(http, f"{base}/users/@me")
            if status == 401:
                return [
                    failed(
                        "discord token",
                        "Discord rejected DISCORD_TOKEN (401)",
                        "copy the token again from the Developer Portal (your application > Bot > Reset Token)",
                    )
                ]
            if status != 200:
                return [failed("discord token", f"GET /users/@me answered {status}", "check DISCORD_API_BASE")]
            checks = [passed("discord token", f"valid, the bot is {me.get('username')} ({me.get('id')})")]
            status, app = await _get_json(http, f"{base}/oauth2/applications/@me")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return [failed("discord", f"could not reach {base}: {exc!r}", "check the network and DISCORD_API_BASE")]
    flags = int(app.get("flags") or 0) if status == 200 else 0
    if status != 200:
        checks.append(failed("discord intent", f"GET /oauth2/applications/@me answered {status}", "check the token"))
    elif flags & (GATEWAY_MESSAGE_CONTENT | GATEWAY_MESSAGE_CONTENT_LIMITED):
        checks.append(passed("discord intent", "the Message Content intent is enabled"))
    else:
        checks.append(failed("discord intent", "the Message Content intent is not enabled", INTENT_MISSING))
    app_id = int(app.get("id") or me.get("id") or 0)
    checks.append(passed("discord invite", invite_url(app_id)))
    return checks


async def check_mcp_servers(settings: Settings) -> list[Check]:
    """Each MCP server of MCP_CONFIG starts and lists its tools (then it is stopped again)."""
    from agent.mcp_config import MCPConfigError  # the SDK's import costs 0.5 s: only when configured
    from agent.mcp_servers import MCPServers

    assert settings.mcp_config is not None
    try:
        servers = MCPServers.from_file(settings.mcp_config)
    except MCPConfigError as exc:
        return [failed("MCP servers", "the file is invalid", str(exc))]
    checks: list[Check] = []
    await servers.start()
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(servers.wait_settled(), timeout=30)
        for name in servers.names:
            tools = servers.tool_names(name)
            if tools is None:
                where = settings.mcp_config
                fix = f"server {name!r} did not start: check its command or url in {where} (the log says why)"
                checks.append(failed(f"MCP server {name}", "not connected", fix))
            else:
                shown = ", ".join(tools[:6]) + (", …" if len(tools) > 6 else "")
                checks.append(passed(f"MCP server {name}", f"{len(tools)} tool(s): {shown}"))
    finally:
        await servers.stop()
    return checks


async def _get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with http.get(url) as response:
        try:
            body = await response.json(content_type=None)
        except ValueError:
            body = {}
        return response.status, body if isinstance(body, dict) else {}


# -- Slack ------------------------------------------------------------------------------------------------------


async def check_slack(settings: Settings) -> list[Check]:
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    from bots.slack.adapter import REQUIRED_SCOPES

    assert settings.slack_bot_token is not None
    base = settings.slack_api_url or AsyncWebClient.BASE_URL
    client = AsyncWebClient(token=settings.slack_bot_token.get_secret_value(), base_url=base, timeout=HTTP_TIMEOUT_S)
    try:
        response = await client.auth_test()
    except SlackApiError as exc:
        error = exc.response.get("error") if isinstance(exc.response.data, dict) else exc.response.status_code
        return [
            failed(
                "slack token",
                f"Slack rejected SLACK_BOT_TOKEN ({error})",
                "set it to the app's Bot User OAuth Token (xoxb-...) from OAuth & Permissions",
            )
        ]
    except Exception as exc:
        return [failed("slack", f"could not reach {base}: {exc!r}", "check the network and SLACK_API_URL")]
    checks = [passed("slack token", f"valid, the bot is {response.get('user')} in {response.get('team')}")]
    granted = {s.strip() for s in str(_header(response.headers, "x-oauth-scopes") or "").split(",") if s.strip()}
    missing = [scope for scope in REQUIRED_SCOPES if scope not in granted]
    if missing:
        checks.append(
            failed(
                "slack scopes",
                f"the token lacks {', '.join(missing)}",
                "add them under OAuth & Permissions (or reinstall from slack-manifest.yml) and reinstall the app",
            )
        )
    else:
        checks.append(passed("slack scopes", f"all {len(REQUIRED_SCOPES)} scopes of slack-manifest.yml granted"))
    checks.append(await _check_slack_mode(settings, base))
    return checks


async def _check_slack_mode(settings: Settings, base: str) -> Check:
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    if settings.slack_app_token is None:
        if settings.slack_signing_secret is None:
            return failed(
                "slack mode",
                "HTTP mode (no SLACK_APP_TOKEN) without SLACK_SIGNING_SECRET",
                "set SLACK_APP_TOKEN (xapp-..., Socket Mode) or SLACK_SIGNING_SECRET (Basic Information)",
            )
        return passed("slack mode", f"HTTP mode: SLACK_SIGNING_SECRET is set; events go to port {settings.port}")
    token = settings.slack_app_token.get_secret_value()
    try:
        await AsyncWebClient(token=token, base_url=base, timeout=HTTP_TIMEOUT_S).apps_connections_open(app_token=token)
    except SlackApiError as exc:
        error = exc.response.get("error") if isinstance(exc.response.data, dict) else exc.response.status_code
        return failed(
            "slack mode",
            f"Slack refused SLACK_APP_TOKEN for Socket Mode ({error})",
            "create an app-level token with connections:write (Basic Information > App-Level Tokens)",
        )
    return passed("slack mode", "Socket Mode: SLACK_APP_TOKEN opens a connection")


def _header(headers: Any, name: str) -> str | None:
    for key, value in dict(headers or {}).items():
        if key.lower() == name:
            return str(value[0] if isinstance(value, list) else value)
    return None
