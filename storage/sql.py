"""What a store sees of a database, whichever backend: statements written once, dialects translated here.

Every store (``storage/log.py``, ``sessions.py``, ...) holds one statement per operation, for both backends.
A statement is written in a neutral form: ``?`` for each parameter, and a ``{word}`` where SQLite and Postgres
spell the same thing differently. Each backend's :class:`Dialect` (``storage/sqlite/db.py``,
``storage/postgres/db.py``) fills the words in and turns the placeholders into its driver's, once per
statement (cached). The words:

- ``{in_ids}``: "is one of a list", which takes one parameter made by :meth:`Dialect.array`: a JSON array read
  through ``json_each`` on SQLite (no limit on the list's length), an array and ``= ANY`` on Postgres;
- ``{for_update}``, ``{for_update_of_m}``: row locks, which Postgres takes and SQLite needs not (its one writer
  holds the whole database);
- ``{cited}``: the message ids a tool call's ``cites_json`` holds, as a table of ``cited.value``;
- ``{now_s}``: the database's clock, in seconds since the epoch: what several workers, whose own clocks may
  disagree, measure a deadline against (an approval's ``APPROVAL_TIMEOUT_S``, ``storage/trail.py``);
- ``{id}``, ``{id_never_reused}``, ``{bigint}``, ``{real}``: column types for the migrations
  (``storage/revisions.py``), ``{ledger_exists}``, whether their ledger is there yet, and the foreign-key
  switches SQLite's table rebuilds need (``{foreign_keys_off}``...; nothing on Postgres).

Everything else is the SQL both understand: ``RETURNING``, ``ON CONFLICT``, partial indexes, ``CAST``. What only
one backend has (the log's batch insert, FTS5 and ``secure_delete``, VACUUM, leases and ``LISTEN/NOTIFY``) stays
in that backend's folder, behind the few methods of :class:`SqlDatabase` below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from storage.records import ColumnRow as Row

if TYPE_CHECKING:
    from storage.leases import Fence
    from storage.records import LoggedMessage, NewMessage

__all__ = ["Dialect", "Params", "ReadinessProbe", "Row", "SqlDatabase", "Transaction"]

Params = Sequence[Any] | dict[str, Any]


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one backend spells the neutral statements of the stores."""

    name: str
    words: Mapping[str, str]
    placeholder: str = "?"
    array: Callable[[Sequence[Any]], Any] = list
    _cache: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def sql(self, statement: str) -> str:
        """``statement`` in this backend's words and placeholders (translated once, then cached)."""
        translated = self._cache.get(statement)
        if translated is None:
            translated = statement.format_map(self.words) if "{" in statement else statement
            if self.placeholder != "?":
                translated = translated.replace("?", self.placeholder)
            self._cache[statement] = translated
        return translated


class Transaction(Protocol):
    """Statements inside one transaction that a backend commits on success and rolls back on any exception."""

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the rows it changed."""

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        """One statement for each of ``rows`` (one hop on SQLite, pipelined on Postgres)."""

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None: ...

    async def fetchall(self, sql: str, params: Params = ()) -> Sequence[Row]: ...

    async def serialize(self, key: int) -> None:
        """Hold the lock ``key`` until the transaction ends (SQLite's one writer holds every lock already)."""

    async def check_fence(self, fence: Fence | None) -> None:
        """Raise LeaseLost unless ``fence`` still holds, and keep it held until commit (see storage/leases.py)."""


class SqlDatabase(Protocol):
    """One backend's connection(s), as every store uses them."""

    dialect: Dialect

    def atomic(self) -> AbstractAsyncContextManager[Transaction]: ...

    async def execute(self, sql: str, params: Params = ()) -> int:
        """One statement in its own transaction; the rows it changed."""

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None: ...

    async def fetchall(self, sql: str, params: Params = ()) -> Sequence[Row]: ...

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        """One statement for each of ``rows``, in one transaction."""

    async def script(
        self, statements: Sequence[tuple[str, Params]], *, fence: Fence | None = None
    ) -> Sequence[Row | None]:
        """Statements that need nothing from one another, in one transaction (fenced as ``check_fence``); the
        first row each returned. One hop to SQLite's thread: the reply on the path to the user is logged so."""

    async def write_messages(self, news: list[NewMessage]) -> list[tuple[LoggedMessage, bool]]:
        """The log's group-commit batch, in one transaction, written the fastest way the backend knows."""

    async def reserve_message_ids(self, count: int) -> list[int]:
        """``count`` message ids, ascending, that no insert takes unless it names them, all below the id of every
        message logged after this returns (a joined thread's history goes there: ``storage/joins.py``)."""

    def typed_error(self, exc: BaseException) -> BaseException:
        """A driver's error as the contract names it (a foreign-key failure on a message becomes ThreadGone)."""

    async def scrub(self) -> None:
        """After an erasure: remove what the backend keeps of the old text outside live rows."""

    async def writable(self) -> bool:
        """Whether a write could start now (SQLite's write lock can be taken; Postgres is up and no standby)."""

    async def close(self) -> None: ...


class ReadinessProbe:
    """The ``DatabaseProbe`` of a running bot (``/readyz`` and the metrics), on either backend."""

    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def writable(self) -> bool:
        return await self._db.writable()

    async def waiting_threads(self) -> int:
        """Threads holding user messages that no posted reply has covered yet."""
        row = await self._db.fetchone(
            "SELECT COUNT(DISTINCT thread_id) AS n FROM messages WHERE reply_state = 'waiting'"
        )
        return 0 if row is None else int(row["n"])
