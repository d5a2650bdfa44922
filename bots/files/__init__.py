"""Attached files: downloaded only from the platforms' own hosts (downloads.py), read in a box of worker
processes with a time budget (reading_box.py, file_reading.py), and handed to a turn (attachment_turns.py).
"""
