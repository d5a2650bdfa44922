"""One builder for a bot's settings (or its environment, for a child process) on the fake model and a temp database.

Tests, process tests and benchmarks all start from here and override what they need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bots.config import Settings


def fake_model_values(llm_base_url: str, db: Path) -> dict[str, Any]:
    """The settings every bot on the fake model needs, as keyword arguments."""
    return {
        "database_url": f"sqlite:///{db}",
        "llm_model": "openai/fake",
        "llm_api_base": llm_base_url,
        "llm_api_key": "sk-test-not-a-secret",
        # Stories about other things have several people talk in a thread without mentioning the bot, and expect
        # every message answered; the reply-mode stories (tests/test_reply_modes.py...) choose their own mode.
        "reply_mode": "all",
    }


def fake_model_settings(llm_base_url: str, db: Path, **overrides: Any) -> Settings:
    """Settings on the fake model and ``db``, without reading any .env file; keyword arguments override."""
    return Settings(_env_file=None, **(fake_model_values(llm_base_url, db) | overrides))  # type: ignore[call-arg]


def fake_model_env(llm_base_url: str, db: Path, **extra: str) -> dict[str, str]:
    """The same as environment variables, for ``threadkeeper`` run as a child process; ``extra`` adds or overrides."""
    env = {name.upper(): str(value) for name, value in fake_model_values(llm_base_url, db).items()}
    return env | {name.upper(): value for name, value in extra.items()}
