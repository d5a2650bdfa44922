"""What counts as a secret in this process, and how it is scrubbed from any text before it is logged.

Three sources, because a key can reach a log line in three ways:

1. the configured tokens and keys (``Settings``), known by value;
2. every provider credential litellm reads from the environment (``OPENAI_API_KEY``, ``AWS_SESSION_TOKEN``, …):
   model errors are logged with their text, and a provider may echo a key or a signed URL back. litellm reads
   hundreds of variables and adds providers every release, so a variable is a secret when its name is in
   :data:`PROVIDER_SECRET_VARIABLES` *or* looks like one (:func:`is_secret_variable`: ``*KEY``, ``*TOKEN``,
   ``*SECRET*``, ``*PASSWORD*``, …); ``tests/test_redaction.py`` checks the rule against the installed litellm;
3. credentials inside URLs (``user:password@``, ``?api_key=…``), in ``LLM_API_BASE`` or anywhere else: those are
   recognised by shape (:data:`URL_CREDENTIALS`), so even one nobody configured never reaches the log.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    from bots.config import Settings

REDACTED = "[redacted]"
MIN_CONFIGURED_LENGTH = 6  # shorter values would blank out ordinary words
MIN_DISCOVERED_LENGTH = 8  # environment values are not known to be secrets: be stricter

# The provider credentials litellm reads, as documented by litellm's provider pages. Most also match
# SECRET_NAME; the list keeps the common ones readable and holds those the pattern cannot know.
PROVIDER_SECRET_VARIABLES = frozenset(
    {
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "AZURE_API_KEY",
        "AZURE_AD_TOKEN",
        "GEMINI_API_KEY",
        "GROQ_API_KEY",
        "MISTRAL_API_KEY",
        "COHERE_API_KEY",
        "TOGETHERAI_API_KEY",
        "OPENROUTER_API_KEY",
        "OR_API_KEY",
        "DEEPSEEK_API_KEY",
        "XAI_API_KEY",
        "HUGGINGFACE_API_KEY",
        "HF_TOKEN",
        "REPLICATE_API_TOKEN",
        "DATABRICKS_TOKEN",
        "WATSONX_APIKEY",
        "WATSONX_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_BEARER_TOKEN_BEDROCK",
        "SNOWFLAKE_JWT",
        "GIGACHAT_CREDENTIALS",
        "CIRCLE_OIDC_TOKEN",
        "CIRCLE_OIDC_TOKEN_V2",
    }
)
SECRET_NAME = re.compile(r"(KEY|TOKEN|_PAT|JWT|CREDENTIALS?)$|SECRET|PASSWORD|PASSWD")

URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)[^\s/@?#]+@")
URL_CREDENTIAL_PARAM = re.compile(
    r"(?P<name>[?&;][A-Za-z0-9_.\-]*(?:key|token|secret|password|passwd|pwd|sig|signature|credential)s?=)"
    r"[^&\s#'\"<>]+",
    re.IGNORECASE,
)
BEARER = re.compile(r"(?P<scheme>\bBearer\s+)[A-Za-z0-9._~+/\-]{8,}=*", re.IGNORECASE)
# Slack tokens by shape (xoxb-, xoxp-, rotated xoxe.xoxb-, refresh xoxe-): with "Add to Slack" each workspace's
# tokens come from the database, not from the settings, so they cannot be known by value.
SLACK_TOKEN = re.compile(r"\bxox[a-z]{1,2}[.\-][A-Za-z0-9.\-]{8,}")
URL_CREDENTIALS = (URL_USERINFO, URL_CREDENTIAL_PARAM, BEARER)


def is_secret_variable(name: str) -> bool:
    """True for an environment variable that holds a credential (by name: the list, then the pattern)."""
    upper = name.upper()
    return upper in PROVIDER_SECRET_VARIABLES or SECRET_NAME.search(upper) is not None


def secrets_in_environment(environ: Mapping[str, str]) -> set[str]:
    """Values of the credential variables, and the credentials inside any URL-valued variable."""
    found = {value for name, value in environ.items() if is_secret_variable(name)}
    for value in environ.values():
        if "://" in value:
            found |= secrets_in_url(value)
    return {value for value in found if len(value) >= MIN_DISCOVERED_LENGTH}


def secrets_in_url(url: str | None) -> set[str]:
    """The password (or a token given as the user name) and the credential-named query values of a URL."""
    if not url or "://" not in url:
        return set()
    try:
        parts = urlsplit(url.strip())
        # https://TOKEN@host carries the token as the user name; with a password, the name is just a name.
        found = {parts.password} if parts.password else ({parts.username} if parts.username else set())
        found |= {value for name, value in parse_qsl(parts.query) if _is_credential_param(name) and value}
    except ValueError:
        return set()
    return found


def _url_password(url: str) -> str | None:
    """A database URL's password, in its user part or as libpq's ``password=`` parameter."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    return parts.password or dict(parse_qsl(parts.query)).get("password")


def _is_credential_param(name: str) -> bool:
    return URL_CREDENTIAL_PARAM.fullmatch(f"?{name}=x") is not None


class Redactor:
    """Scrubs known secret values, then anything shaped like a credential in a URL or an auth header."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if len(s) >= MIN_CONFIGURED_LENGTH}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = URL_USERINFO.sub(rf"\g<scheme>{REDACTED}@", text)
        text = URL_CREDENTIAL_PARAM.sub(rf"\g<name>{REDACTED}", text)
        text = SLACK_TOKEN.sub(REDACTED, text)
        return BEARER.sub(rf"\g<scheme>{REDACTED}", text)


def configured_secrets(settings: Settings) -> set[str]:
    """Everything a log line or a report must never show: configured tokens, provider keys, URL credentials."""
    values = [
        settings.llm_api_key,
        settings.discord_token,
        settings.slack_bot_token,
        settings.slack_app_token,
        settings.slack_signing_secret,
        settings.slack_client_secret,
        settings.token_encryption_key,
    ]
    found = {v.get_secret_value() for v in values if v is not None}
    urls = (settings.llm_api_base, settings.discord_api_base, settings.discord_gateway_url, settings.slack_api_url)
    for url in urls:
        found |= secrets_in_url(url)
    database_password = _url_password(settings.database_url)  # the user name of a database URL is just a name
    if database_password:
        found.add(database_password)
    return found | secrets_in_environment(os.environ)
