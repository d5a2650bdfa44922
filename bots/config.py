"""Typed settings, read once at start-up from the environment and an optional ``.env`` file.

Every setting is validated here, before any adapter connects, so a mistake is one clear paragraph naming the
variable and the fix (exit code 2) rather than a traceback from deep inside a library. Secrets are
``SecretStr``: they never print, not even in a validation error.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from storage.backends import Backend, UnsupportedDatabaseURL, backend_of, database_path_from_url

IdList = Annotated[frozenset[str], NoDecode]
DEFAULT_SUGGESTED_PROMPTS = (
    ("What can you do?", "What can you help me with?"),
    ("Summarize a discussion", "I'll paste a discussion: summarize it and list the decisions and open questions."),
    ("Draft a message", "Help me draft a short, friendly message to my team."),
    ("Explain simply", "Explain this to me simply, with an example:"),
)
NameList = Annotated[tuple[str, ...], NoDecode]
BUILTIN_TOOL_NAMES = ("search_thread",)
HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")

HINTS: dict[str, str] = {
    "DATABASE_URL": "a SQLite URL such as sqlite:///data/threadkeeper.db (relative) or "
    "sqlite:////var/lib/threadkeeper/threadkeeper.db (absolute), or a Postgres URL such as "
    "postgresql://threadkeeper:password@db.internal:5432/threadkeeper (several workers)",
    "LLM_MODEL": "a litellm model string such as openai/gpt-4o-mini, anthropic/claude-3-5-haiku-latest "
    "or ollama/llama3.1",
    "LLM_API_BASE": "the base URL of an OpenAI-compatible or provider endpoint, e.g. http://localhost:11434",
    "LLM_CONTEXT_WINDOW": "a whole number of tokens of at least 256, e.g. 8192",
    "LLM_TIMEOUT_S": "a number of seconds greater than 0, e.g. 60",
    "LLM_MAX_OUTPUT_TOKENS": "a whole number of tokens of at least 32 one answer may take, e.g. 4096",
    "MAX_LIVE_SESSIONS": "a whole number of at least 1, e.g. 1000",
    "PORT": "a TCP port number between 1 and 65535",
    "LOG_LEVEL": "one of DEBUG, INFO, WARNING, ERROR",
    "LOG_RETENTION_DAYS": "a whole number of days of at least 1, e.g. 90, or leave it unset to keep everything",
    "LLM_FUNCTION_CALLING": "true or false, or leave it unset to follow litellm's model map",
    "LOG_FORMAT": "text (the default) or json (one JSON object a line)",
    "LOG_FILE": "the path of a file to append log lines to, e.g. data/threadkeeper.log, or leave it unset for "
    "stderr (threadkeeper chat then logs to threadkeeper-chat.log next to the database)",
    "METRICS_PORT": "a TCP port number between 1 and 65535 for /metrics, /healthz and /readyz, or leave it empty",
    "METRICS_HOST": "the address to serve /metrics, /healthz and /readyz on: 127.0.0.1 (the default: this machine "
    "only), 0.0.0.0 or :: (every interface, e.g. for a scraper in another container), or one interface's address",
    "REPLY_MODE": "auto (the default: every message while one person talks to the bot, only when addressed once "
    "others join), all (every message) or mention (only mentions and replies to the bot)",
    "JOIN_HISTORY_MESSAGES": "a whole number of at least 0 earlier messages to read when mentioned in a thread the "
    "bot was not part of, e.g. 200 (0: read none)",
    "USER_DAILY_TOKENS": "a whole number of tokens of at least 1 per person per UTC day, or leave it empty",
    "MCP_CONFIG": 'the path of a JSON file in the mcpServers shape, e.g. mcp.json holding {"mcpServers": '
    '{"files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/srv/docs"]}}}, '
    "or leave it unset for no MCP servers",
    "MAX_TOOL_STEPS": "a whole number of model steps with tool calls per turn, at least 1, e.g. 8",
    "TOOL_TIMEOUT_S": "a number of seconds greater than 0 that one tool call may take, e.g. 60",
    "BUILTIN_TOOLS": "a comma-separated list of built-in tools (" + ", ".join(BUILTIN_TOOL_NAMES) + "), "
    "or empty to turn them off",
    "TOOL_APPROVERS": "a comma-separated list of user ids who alone may approve tool calls, or empty for anyone "
    "the allowlists admit",
    "APPROVAL_TIMEOUT_S": "a number of seconds greater than 0 to wait for an approval click, e.g. 600",
    "LLM_MODELS": "a comma-separated list of litellm model strings people may switch a thread to, the default "
    "first, e.g. openai/gpt-4o-mini,anthropic/claude-3-5-haiku-latest, or leave it unset for LLM_MODEL alone",
    "ADMIN_USERS": "a comma-separated list of user ids who alone may use the forget and model commands, or empty "
    "for anyone the allowlists admit",
    "WORKER_LEASE_S": "a number of seconds of at least 3 a worker's hold on a thread lasts unrenewed, e.g. 15",
    "WORKER_POLL_S": "a number of seconds greater than 0 between a worker's looks at waiting threads, e.g. 2",
    "DISCORD_SHARDS": "a whole number of Discord gateway shards of at least 1, e.g. 1",
    "SLACK_REDIRECT_URI": "the https URL of /slack/oauth_redirect as entered under OAuth & Permissions > Redirect "
    "URLs, e.g. https://bot.example.com/slack/oauth_redirect, or leave it unset for the app's only one",
}


# Settings that may hold a secret (a database URL can carry a password): each can also be read from the file that
# NAME_FILE names, as Docker and Kubernetes secrets are mounted (README, "Deploy").
SECRET_SETTINGS = (
    "discord_token",
    "slack_bot_token",
    "slack_app_token",
    "slack_signing_secret",
    "slack_client_secret",
    "token_encryption_key",
    "llm_api_key",
    "database_url",
)


class ConfigError(Exception):
    """A setting is missing or invalid. The message names the variable and what to put there."""


class SecretFilesSource(PydanticBaseSettingsSource):
    """``NAME_FILE=/run/secrets/name`` sets NAME to that file's content, less one trailing newline.

    It reads the ``*_FILE`` variables from the environment and the .env file; setting a secret both ways is
    refused (which one should win is a guess), as is a file that cannot be read. A blank NAME counts as unset,
    as everywhere in these settings, so ``DISCORD_TOKEN=`` from a copied .env.example does not clash.
    """

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        init: InitSettingsSource,
        env: EnvSettingsSource,
        dotenv: EnvSettingsSource,
    ) -> None:
        super().__init__(settings_cls)
        self._sources = (init.init_kwargs, env.env_vars, dotenv.env_vars)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything happens in __call__

    def _lookup(self, name: str) -> str | None:
        for source in self._sources:
            value = source.get(name)
            if isinstance(value, str) and value.strip():
                return value
            if value is not None and not isinstance(value, str):
                return str(value)
        return None

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in SECRET_SETTINGS:
            path = self._lookup(f"{name}_file")
            if path is None:
                continue
            variable = name.upper()
            if self._lookup(name) is not None:
                raise ConfigError(
                    f"{variable} and {variable}_FILE are both set. Set only one: {variable}_FILE for a secret "
                    f"mounted as a file, or {variable} for the value itself."
                )
            try:
                content = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise ConfigError(
                    f"{variable}_FILE is invalid: cannot read {path} ({reason}). Set it to the path of a file "
                    f"this process can read, holding the value of {variable}."
                ) from None
            values[name] = content.removesuffix("\n").removesuffix("\r")
        return values


def _split_ids(value: Any) -> Any:
    if isinstance(value, str):
        return frozenset(part.strip() for part in value.split(",") if part.strip())
    return value


class Settings(BaseSettings):
    """All of threadkeeper's configuration. Field names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The usual sources, and NAME_FILE for the secret settings (SecretFilesSource)."""
        assert isinstance(init_settings, InitSettingsSource)
        assert isinstance(env_settings, EnvSettingsSource) and isinstance(dotenv_settings, EnvSettingsSource)
        files = SecretFilesSource(settings_cls, init_settings, env_settings, dotenv_settings)
        return init_settings, files, env_settings, dotenv_settings, file_secret_settings

    database_url: str = "sqlite:///data/threadkeeper.db"
    llm_model: str = "openai/gpt-4o-mini"
    llm_api_base: str | None = None
    llm_api_key: SecretStr | None = None
    llm_context_window: int = Field(default=8192, ge=256)
    llm_timeout_s: float = Field(default=60.0, gt=0)
    llm_function_calling: bool | None = None  # None: litellm's model map decides
    llm_max_output_tokens: int = Field(default=4096, ge=32)  # an answer's max_tokens (within a quarter window)
    system_prompt: str = (
        "You are threadkeeper, a helpful assistant taking part in a team chat thread. "
        "Several people may write in the thread; each user message starts with the author's name. "
        "Answer concisely and use Markdown where it helps."
    )
    max_live_sessions: int = Field(default=1000, ge=1)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_retention_days: int | None = Field(default=None, ge=1)
    log_format: Literal["text", "json"] = "text"
    log_file: Path | None = None  # unset: stderr, except in `chat`, where log lines would land inside answers
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"  # unauthenticated: this machine only unless the operator says otherwise
    user_daily_tokens: int | None = Field(default=None, ge=1)
    attachment_max_mb: float = Field(default=20.0, gt=0)  # larger files are refused with a note
    attachment_timeout_s: float = Field(default=20.0, gt=0)  # one file's download
    attachment_read_budget_s: float = Field(default=5.0, gt=0)  # one file's reading (bots/files/reading_box.py)
    attachment_message_read_budget_s: float = Field(default=15.0, gt=0)  # all the files of one message
    # Voice messages and audio files (bots/files/voice.py): unset, audio is described by name.
    transcription_model: str | None = None
    transcription_max_seconds: float = Field(default=600.0, gt=0)  # longer audio is not transcribed
    transcription_timeout_s: float = Field(default=60.0, gt=0)  # one audio file's transcription

    # Tools: wired by the composition root as agent/tools.py's module docstring shows.
    mcp_config: Path | None = None
    max_tool_steps: int = Field(default=8, ge=1)
    tool_timeout_s: float = Field(default=60.0, gt=0)
    builtin_tools: NameList = BUILTIN_TOOL_NAMES
    tool_approvers: IdList = frozenset()
    approval_timeout_s: float = Field(default=600.0, gt=0)

    # In-thread commands (bots/router/commands/).
    llm_models: NameList = ()  # empty: LLM_MODEL alone
    admin_users: IdList = frozenset()
    # When the bot answers, and what it reads when mentioned in a thread it was not part of (issue 22).
    reply_mode: Literal["all", "mention", "auto"] = "auto"  # threads nobody chose for (the reply command)
    join_history_messages: int = Field(default=200, ge=0)
    # Several workers on one Postgres (bots/workers/ownership.py): how long a lease lasts unrenewed, how often to poll.
    worker_lease_s: float = Field(default=15.0, ge=3)
    worker_poll_s: float = Field(default=2.0, gt=0)

    discord_token: SecretStr | None = None
    discord_shards: int = Field(default=1, ge=1)
    discord_api_base: str | None = None
    discord_gateway_url: str | None = None
    discord_allowed_guilds: IdList = frozenset()
    discord_allowed_channels: IdList = frozenset()
    discord_allowed_roles: IdList = frozenset()
    discord_allowed_users: IdList = frozenset()

    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str | None = None
    # Slack distribution ("Add to Slack" in many workspaces, bots/slack/install/): instead of SLACK_BOT_TOKEN.
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    slack_redirect_uri: str | None = None
    token_encryption_key: SecretStr | None = None  # Fernet key(s), comma-separated, the newest first
    slack_allowed_teams: IdList = frozenset()
    slack_allowed_channels: IdList = frozenset()
    slack_allowed_users: IdList = frozenset()
    # The DM's suggested prompts (agent messages tab, assistant panel): a JSON list of [title, message] pairs.
    slack_suggested_prompts: Annotated[tuple[tuple[str, str], ...], NoDecode] = DEFAULT_SUGGESTED_PROMPTS
    port: int = Field(default=3000, ge=1, le=65535)

    _split = field_validator(
        "discord_allowed_guilds",
        "discord_allowed_channels",
        "discord_allowed_roles",
        "discord_allowed_users",
        "slack_allowed_teams",
        "slack_allowed_channels",
        "slack_allowed_users",
        "tool_approvers",
        "admin_users",
        mode="before",
    )(_split_ids)

    @field_validator("builtin_tools", "llm_models", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
        return value

    @field_validator("slack_suggested_prompts", mode="before")
    @classmethod
    def _prompts_json(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if not value.strip():
            return DEFAULT_SUGGESTED_PROMPTS
        try:
            return json.loads(value)
        except ValueError:
            raise ValueError('must be JSON, e.g. [["What can you do?", "What can you help me with?"]]') from None

    @field_validator("slack_suggested_prompts")
    @classmethod
    def _at_most_four_prompts(cls, value: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        if len(value) > 4:
            raise ValueError('Slack shows at most 4 suggested prompts, e.g. [["Title", "message"], ...]')
        if any(not title.strip() or not message.strip() for title, message in value):
            raise ValueError("each suggested prompt needs a title and a message")
        return value

    @field_validator("builtin_tools")
    @classmethod
    def _known_builtins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in BUILTIN_TOOL_NAMES]
        if unknown:
            raise ValueError(f"unknown built-in tool {', '.join(map(repr, unknown))}")
        return value

    @field_validator(
        "llm_api_base",
        "llm_api_key",
        "discord_token",
        "discord_api_base",
        "discord_gateway_url",
        "slack_bot_token",
        "slack_app_token",
        "slack_signing_secret",
        "slack_api_url",
        "slack_client_id",
        "slack_client_secret",
        "slack_redirect_uri",
        "token_encryption_key",
        "metrics_port",
        "user_daily_tokens",
        "mcp_config",
        "llm_function_calling",
        "transcription_model",
        "log_retention_days",
        "log_file",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        """``VAR=`` in a .env file means "not set", as in .env.example."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("metrics_host", mode="before")
    @classmethod
    def _host_or_default(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        host = value.strip() or "127.0.0.1"
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not HOST_NAME.fullmatch(host):
                raise ValueError(f"{host!r} is not an IP address or a host name") from None
        return host

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", "reply_mode", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if backend_of(value) is Backend.SQLITE:
            database_path_from_url(value)
        return value

    @field_validator("llm_model")
    @classmethod
    def _model_named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("llm_models")
    @classmethod
    def _models_named(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        spaced = [name for name in value if any(c.isspace() for c in name)]
        if spaced:
            raise ValueError(f"model strings cannot contain spaces: {', '.join(map(repr, spaced))}")
        return value

    @property
    def models(self) -> tuple[str, ...]:
        """The models a thread may use, the default first: LLM_MODELS, else LLM_MODEL alone."""
        return self.llm_models or (self.llm_model,)

    @property
    def default_model(self) -> str:
        return self.models[0]

    @property
    def database_backend(self) -> Backend:
        return backend_of(self.database_url)

    @property
    def database_path(self) -> Path:
        """The SQLite file (an error on Postgres: check ``database_backend`` first)."""
        return database_path_from_url(self.database_url)

    @property
    def discord_enabled(self) -> bool:
        return self.discord_token is not None and bool(self.discord_token.get_secret_value())

    @property
    def slack_distributed(self) -> bool:
        """Slack through OAuth installs in many workspaces (SLACK_CLIENT_ID / SLACK_CLIENT_SECRET set)."""
        return self.slack_client_id is not None or self.slack_client_secret is not None

    @property
    def slack_enabled(self) -> bool:
        """Any Slack credential is set: the Slack adapter starts, or says which setting is missing or too many."""
        credentials = (self.slack_bot_token, self.slack_app_token, self.slack_signing_secret)
        return self.slack_distributed or any(c is not None and c.get_secret_value() for c in credentials)


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings, turning pydantic's errors into one readable paragraph."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        variable = str(error["loc"][0]).upper() if error["loc"] else "configuration"
        reason = error["msg"].removeprefix("Value error, ")
        hint = HINTS.get(variable, "see .env.example for the accepted values")
        lines.append(f"{variable} is invalid: {reason}. Set it to {hint}.")
    return " ".join(lines)


__all__ = ["ConfigError", "Settings", "UnsupportedDatabaseURL", "load_settings"]
