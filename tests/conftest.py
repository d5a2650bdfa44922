"""Shared fixtures: a loopback OpenAI-compatible model, settings on a temp database, a router harness.

litellm is told to use its bundled cost map before anything imports it, and its slow import starts once per
test session on a worker thread, exactly as the bot does at start-up.
"""

from __future__ import annotations

import os

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agent.llm import preload_litellm
from bots.config import Settings
from tests.fakes.llm import FakeLLM
from tests.fakes.settings import fake_model_settings

preload_litellm()

# The throwaway Postgres server and its fixtures (postgres_server, postgres_url).
pytest_plugins = ("tests.fakes.postgres",)

MakeSettings = Callable[..., Settings]


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLLM]:
    async with FakeLLM() as fake:
        yield fake


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "threadkeeper.db"


@pytest.fixture
def make_settings(db_path: Path, fake_llm: FakeLLM) -> MakeSettings:
    """Settings for a bot on a temp SQLite file talking to the fake model; keyword arguments override."""

    def make(**overrides: Any) -> Settings:
        return fake_model_settings(
            fake_llm.base_url, db_path, **({"llm_context_window": 8192, "llm_timeout_s": 5.0} | overrides)
        )

    return make
