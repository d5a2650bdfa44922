"""Baseline for P1/P3: the smallest slack-bolt Socket Mode bot, echoing every message, on the same fake."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

app = AsyncApp(client=AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]))


@app.event("message")
async def echo(event: dict[str, Any], say: Any) -> None:
    await say(text=event.get("text", ""), thread_ts=event.get("thread_ts") or event.get("ts"))


async def main() -> None:
    await AsyncSocketModeHandler(app, os.environ["SLACK_APP_TOKEN"]).start_async()


asyncio.run(main())
