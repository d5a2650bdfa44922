"""In-thread commands: the flow every platform's commands go through (flow.py), the model a thread answers with
(models.py) and when it answers at all (reply.py).
"""
