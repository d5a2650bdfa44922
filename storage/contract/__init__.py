"""The storage contract, one module a job: the Protocols that every backend's stores implement.

They outgrew one module; ``storage/protocols.py`` stays the one name callers import them by (``from
storage.protocols import ThreadLog``), so no caller needs to know which job a store is filed under. How to add a
store: ``storage/protocols.py``.
"""
