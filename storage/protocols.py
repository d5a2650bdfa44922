"""The storage contract: one small Protocol per store, implemented by every backend.

The router, the flows and the CLI type their stores with these names; the composition root gets the concrete
objects from :func:`storage.backends.open_storage`. Each store is one class for both backends (``storage/log.py``,
``sessions.py``, ``erasure.py``, ``trail.py``, ``usage.py``, ``feedback.py``, ``thread_settings.py``, over
``storage/sql.py``); search and the leases are each backend's own (``storage/sqlite/``, ``storage/postgres/``).
mypy checks them against these, and one test suite (tests/storage_contract/) runs unchanged on SQLite and
Postgres.

The Protocols themselves live in ``storage/contract/``, grouped by job (the log, catching up, forgetting, the
tool turn, what people do around the answers, the deployment); this module is the one place callers import
them from, so moving a Protocol between those modules never touches a caller.

Every method is keyword-only and returns the dataclasses of ``storage/records.py``, never a driver's row. Adding
a store: its records in records.py, its Protocol in the module of ``storage/contract/`` whose job it shares (and
its name here), its class (statements in the neutral SQL of sql.py), its tables in the one migration list
(storage/revisions.py), a field in ``Storage`` (storage/backends.py), and its contract tests in
tests/storage_contract/. A table missing on one side fails test_postgres_foundation (both schemas must have the
same tables and columns), and ``migrate-db`` copies any new table without a change.
"""

from __future__ import annotations

from storage.contract.catch_up import CardStore, SessionStore
from storage.contract.deployment import DatabaseProbe, OAuthStates, SlackInstallations, SlackSharedChannels
from storage.contract.forgetting import ErasureStore
from storage.contract.messages import DeliveredEvents, JoinStore, ThreadLog
from storage.contract.people import FeedbackStore, ThreadSettings, UsageLog
from storage.contract.tools import ApprovalStore, ThreadSearch, ToolTrail, TurnJournal

__all__ = [
    "ApprovalStore",
    "CardStore",
    "DatabaseProbe",
    "DeliveredEvents",
    "ErasureStore",
    "FeedbackStore",
    "JoinStore",
    "OAuthStates",
    "SessionStore",
    "SlackInstallations",
    "SlackSharedChannels",
    "ThreadLog",
    "ThreadSearch",
    "ThreadSettings",
    "ToolTrail",
    "TurnJournal",
    "UsageLog",
]
