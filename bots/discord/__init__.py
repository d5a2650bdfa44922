"""The Discord adapter: discord.py in, ThreadRouter decisions out, threads, buttons and edited messages back."""

from bots.discord.adapter import DiscordAdapter

__all__ = ["DiscordAdapter"]
