"""The router: ThreadRouter and the flows it hands work to (intake, answering, live sessions, the card,
commands, forgetting, joining, reply modes); the adapters reach it through bots/seam/ (and bounded.py).
"""
