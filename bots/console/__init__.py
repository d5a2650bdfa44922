"""The terminal adapter (``threadkeeper chat``): try the bot without a Discord or Slack account.
It translates like the other adapters and never imports storage.
"""
