"""No token, provider key or credential in a URL reaches a log line (issue 14, item 7).

The records go through the same filter ``threadkeeper run`` installs, fed by the same function the CLI uses
to collect what is secret; the last test holds the naming rule against the litellm that is installed.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bots.config import Settings
from bots.operator.logs import RedactSecrets
from bots.operator.redaction import configured_secrets, is_secret_variable

PROVIDER_KEYS = {
    "OPENAI_API_KEY": "sk-openai-0001",
    "ANTHROPIC_API_KEY": "sk-ant-api03-0002",
    "AZURE_API_KEY": "azure-key-0003",
    "GEMINI_API_KEY": "AIzaGemini0004",
    "GROQ_API_KEY": "gsk_groq_0005",
    "MISTRAL_API_KEY": "mistral-key-0006",
    "COHERE_API_KEY": "cohere-key-0007",
    "TOGETHERAI_API_KEY": "together-key-0008",
    "OPENROUTER_API_KEY": "sk-or-v1-0009",
    "DEEPSEEK_API_KEY": "sk-deepseek-0010",
    "XAI_API_KEY": "xai-key-0011",
    "AWS_SECRET_ACCESS_KEY": "aws/secret+0012",
    "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEC0013",
    "HUGGINGFACE_API_KEY": "hf_huggingface_0014",
    "SOMENEWPROVIDER_API_KEY": "brand-new-0015",  # not in any list: the name's shape is enough
    "WATSONX_APIKEY": "watsonx-key-0016",
}
API_BASE = "https://proxyuser:proxy-pass-0017@llm.example.com/v1?api_key=query-key-0018&region=eu"


@pytest.fixture
def log_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """A logger whose records pass the CLI's redaction filter into a string, with provider keys set."""
    for name, value in PROVIDER_KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OTHER_SERVICE_URL", "postgres://app:db-pass-0019@db.internal/app")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, llm_api_base=API_BASE, llm_api_key="sk-configured-0020", discord_token="discord-0021"
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets(configured_secrets(settings)))
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    yield stream
    logger.removeHandler(handler)
    logger.propagate = True


def test_provider_keys_from_the_environment_are_redacted_in_messages_and_tracebacks(log_lines: io.StringIO) -> None:
    logger = logging.getLogger("tests.redaction")
    keys = list(PROVIDER_KEYS.values())
    logger.warning("model error: %s", "; ".join(keys))
    try:
        raise RuntimeError(f"provider said: invalid key {keys[1]} (session {keys[12]})")
    except RuntimeError:
        logger.exception("no answer")
    text = log_lines.getvalue()
    assert "model error: " + "; ".join(["[redacted]"] * len(keys)) in text
    assert "provider said: invalid key [redacted] (session [redacted])" in text
    assert not [key for key in keys if key in text]


def test_credentials_inside_urls_are_redacted_configured_or_not(log_lines: io.StringIO) -> None:
    logger = logging.getLogger("tests.redaction")
    logger.error("POST %s failed", API_BASE.replace("/v1?", "/v1/chat/completions?"))
    logger.error("could not reach postgres://app:db-pass-0019@db.internal/app")
    logger.error("never configured: https://ci:unknown-pass-0022@git.example/x?token=unknown-token-0023")
    logger.error("header Authorization: Bearer sk-never-configured-0024")
    logger.error("model openai/gpt-4o-mini in region eu answered 401")  # nothing secret: left alone
    lines = log_lines.getvalue().splitlines()
    assert lines == [
        "POST https://[redacted]@llm.example.com/v1/chat/completions?api_key=[redacted]&region=eu failed",
        "could not reach postgres://[redacted]@db.internal/app",
        "never configured: https://[redacted]@git.example/x?token=[redacted]",
        "header Authorization: Bearer [redacted]",
        "model openai/gpt-4o-mini in region eu answered 401",
    ]


def test_slack_tokens_of_installed_workspaces_are_redacted_by_their_shape(log_lines: io.StringIO) -> None:
    """With "Add to Slack" the tokens come from the database, never the settings: known by shape only."""
    logger = logging.getLogger("tests.redaction")
    logger.error("body: {'access_token': 'xoxb-1111-2222-abcdefABCDEF', 'refresh_token': 'xoxe-1-My0xLTEy-abc'}")
    logger.error("rotated to xoxe.xoxb-1-MS0yLTEyMzQ1-6789 for T1")
    assert log_lines.getvalue().splitlines() == [
        "body: {'access_token': '[redacted]', 'refresh_token': '[redacted]'}",
        "rotated to [redacted] for T1",
    ]


def test_configured_tokens_are_redacted_wherever_they_appear(log_lines: io.StringIO) -> None:
    logging.getLogger("tests.redaction").warning("keys %s and %s", "sk-configured-0020", "discord-0021")
    assert log_lines.getvalue() == "keys [redacted] and [redacted]\n"


def _credential_like_variables_litellm_reads() -> set[str]:
    """Variables the installed litellm reads whose names say credential (and not a file, URL, id or switch)."""
    spec = importlib.util.find_spec("litellm")
    assert spec is not None and spec.origin is not None
    reads = re.compile(
        r"""(?:get_secret(?:_str|_bool)?|environ\.get|getenv)\(\s*(?:secret_name\s*=\s*)?["']([A-Z][A-Z0-9_]+)["']"""
    )
    credential = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|JWT|CREDENTIAL")
    configuration = re.compile(
        r"_(FILE|DIR|DIRS|URL|URI|ENDPOINT|HOST|PORT|PATH|NAME|ENABLED|VERSION|CLAIMS|KEYS|FIRST|HINT|PERIOD|BASE|"
        r"ID|TTL|SECONDS|LIMIT|AUDIENCE|ISSUER|ALIAS|PARALLELISM)$"
    )
    names: set[str] = set()
    for source in Path(spec.origin).parent.rglob("*.py"):
        names |= set(reads.findall(source.read_text(errors="replace")))
    return {n for n in names if credential.search(n) and not configuration.search(n)}


def test_every_credential_variable_the_installed_litellm_reads_counts_as_secret() -> None:
    variables = _credential_like_variables_litellm_reads()
    assert {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AWS_SESSION_TOKEN"} <= variables  # the scan finds them
    assert sorted(v for v in variables if not is_secret_variable(v)) == []
