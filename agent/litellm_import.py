"""Importing litellm once, off the event loop, while the bot connects.

Importing litellm takes seconds. :func:`preload_litellm` starts that import on a worker thread at start-up, so
the gateway or socket connects meanwhile; the first LLM call awaits it through :func:`litellm_module`. Nothing
imports litellm on the event loop. ``LITELLM_LOCAL_MODEL_COST_MAP`` is set before the import so litellm never
fetches its cost map, and litellm's module-level switches are set once, here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import logging
import os
import threading
from types import ModuleType

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

_import_lock = threading.Lock()
_import_future: concurrent.futures.Future[ModuleType] | None = None


def _import_litellm() -> ModuleType:
    module = importlib.import_module("litellm")
    setattr(module, "suppress_debug_info", True)  # noqa: B010 - litellm's module-level switches
    setattr(module, "drop_params", True)  # noqa: B010
    # Histories with tool calls: pair every call with a result and fill empty contents where a provider
    # (Anthropic, Bedrock) would refuse them.
    setattr(module, "modify_params", True)  # noqa: B010
    logging.getLogger("LiteLLM").setLevel(logging.WARNING)
    return module


def preload_litellm() -> concurrent.futures.Future[ModuleType]:
    """Start importing litellm on a daemon thread (once); return the future of the module."""
    global _import_future
    with _import_lock:
        if _import_future is None:
            future: concurrent.futures.Future[ModuleType] = concurrent.futures.Future()

            def run() -> None:
                try:
                    future.set_result(_import_litellm())
                except BaseException as exc:
                    future.set_exception(exc)

            threading.Thread(target=run, name="litellm-import", daemon=True).start()
            _import_future = future
        return _import_future


async def litellm_module() -> ModuleType:
    """The litellm module, awaiting the background import if it is still running."""
    return await asyncio.wrap_future(preload_litellm())
