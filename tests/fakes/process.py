"""A child Python process of this project (the bot, or a baseline bot) with a clean environment.

Tests and benchmarks start ``threadkeeper run`` this way: the platform, model and database variables of the
calling shell are dropped, litellm is told to use its bundled cost map, and the child is killed on exit if it
is still running.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def child_process(
    args: list[str], env: dict[str, str], *, log: Path | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A child Python process with a clean environment plus ``env``; killed on exit if still running."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SLACK_", "LLM_", "DATABASE_"))}
    with open(log or os.devnull, "ab") as output:  # noqa: ASYNC230 - opened once, before the child starts
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            cwd=ROOT,
            stdout=output,
            stderr=output,
            env=base | {"PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LOG_LEVEL": "WARNING"} | env,
        )
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
