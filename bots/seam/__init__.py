"""The seam between the adapters and the router: platform-neutral messages in, the ports the router calls out by.

Every folder of ``bots/`` may import it and it imports none of them, so the flows below the router (files,
replies, tools, workers, operator) name a thread or an outbox without importing the router itself.
"""
