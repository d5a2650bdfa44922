"""Baseline for P1/P3: the smallest discord.py bot, echoing every message back, on the same fake."""

from __future__ import annotations

import os

import discord
import yarl

discord.http.Route.BASE = os.environ["DISCORD_API_BASE"]
discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["DISCORD_GATEWAY_URL"])

intents = discord.Intents.none()
intents.guilds = intents.guild_messages = intents.message_content = True
client = discord.Client(intents=intents)


@client.event
async def on_message(message: discord.Message) -> None:
    if not message.author.bot:
        await message.channel.send(message.content)


client.run(os.environ["DISCORD_TOKEN"], log_handler=None)
