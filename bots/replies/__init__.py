"""Showing a reply while it is written: the one reply streamer, the platforms' native streaming, the
throttle, and rendering (message splitting, the card's words).
"""
