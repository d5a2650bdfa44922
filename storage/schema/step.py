"""What one migration step is: its statements for both backends, and what only one of them runs.

A module of its own so that the list (``storage/revisions.py``) and the steps that shipped first
(``storage/schema/m001_to_m009.py``) both build steps without importing each other; the rules for writing a step
are in ``storage/revisions.py``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    statements: tuple[str, ...] = ()  # both backends, after the backend's own below
    sqlite: tuple[str, ...] = ()  # SQLite only
    postgres: tuple[str, ...] = ()  # Postgres only
    only: str | None = None  # the one backend ("sqlite", "postgres") that applies and records it

    def statements_for(self, dialect: str) -> tuple[str, ...]:
        return (self.sqlite if dialect == "sqlite" else self.postgres) + self.statements
