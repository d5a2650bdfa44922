"""For the people who run the bot: check, health and metrics, usage and the daily cap, export, logs and
their redaction and escaping, housekeeping.
"""
