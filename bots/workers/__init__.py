"""Several workers on one Postgres: this worker's leases (ownership.py), the threads it owns
(owned_threads.py), and the periodic tasks beside the bot.
"""
