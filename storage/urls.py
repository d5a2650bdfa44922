"""What a DATABASE_URL names: the backend, the SQLite file, and the URL as it may be shown (no password).

Apart from ``storage/backends.py`` so the backends' own modules can use it (``storage/postgres/db.py`` names the
server it cannot reach) without importing the module that imports them.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


class Backend(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"


class UnsupportedDatabaseURL(ValueError):
    """DATABASE_URL names neither a SQLite file nor a Postgres server."""


class DatabaseUnavailable(Exception):
    """The database server cannot be reached or refuses us; the message names it (without its password)."""


def backend_of(url: str) -> Backend:
    """Which backend ``url`` names; a clear error for anything else."""
    if url.startswith(SQLITE_PREFIX):
        return Backend.SQLITE
    if url.startswith(POSTGRES_PREFIXES):
        return Backend.POSTGRES
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise UnsupportedDatabaseURL(
        f"DATABASE_URL must name a SQLite file or a Postgres server (got a {scheme!r} URL); use "
        "sqlite:///relative/path.db, sqlite:////absolute/path.db or postgresql://user:password@host:5432/dbname"
    )


def database_path_from_url(url: str) -> Path:
    """``sqlite:///relative/path`` or ``sqlite:////absolute/path`` to a Path."""
    if backend_of(url) is not Backend.SQLITE:
        raise UnsupportedDatabaseURL(f"{url.split(':', 1)[0]!r} URL names no SQLite file")
    rest = url[len(SQLITE_PREFIX) :]
    if not rest or rest.endswith("/"):
        raise UnsupportedDatabaseURL("the SQLite URL names no file, e.g. sqlite:///data/threadkeeper.db")
    return Path(rest)


def describe_url(url: str) -> str:
    """The URL without its password (in the user part or a ``password=`` parameter), for logs and messages."""
    if backend_of(url) is Backend.SQLITE:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    query = urlencode([(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)], safe="*/")
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
