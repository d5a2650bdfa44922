"""The Slack adapter: slack-bolt in, ThreadRouter decisions out, Block Kit and chat.update back."""

from bots.slack.adapter import SlackAdapter

__all__ = ["SlackAdapter"]
