"""What the Slack adapter reads through the Web API besides the events themselves: a thread's earlier messages
when a mention brings the bot into it (``history.py``), and people's display names (``names.py``)."""
