"""The router: ThreadRouter and the flows it hands work to (intake, answering, live sessions, the card,
commands, forgetting), and the seam every adapter imports (messages.py, ports.py, bounded.py).
"""
