"""A throwaway Postgres server for the tests: initdb + pg_ctl into a temp folder, once per test session.

Not a fake: the real server, on loopback, on its own port, with trust authentication and without fsync (a test
database need not survive a power loss; ``durable=True`` keeps fsync for benchmarks). Each test gets a fresh
database (``postgres_url``), so migrations and contract tests start from nothing.

Where the server comes from, in order: ``THREADKEEPER_TEST_POSTGRES_URL`` (a server you run, whose user may
create databases), else ``initdb``/``pg_ctl`` on PATH or in Debian's /usr/lib/postgresql/<version>/bin. As root
(CI) the server runs as the ``postgres`` user through ``runuser``, because initdb refuses root. When neither
exists the Postgres tests are skipped with a notice, unless ``THREADKEEPER_REQUIRE_POSTGRES=1`` (set by
.ci/run), which turns the skip into a failure.

Tests use the fixtures ``postgres_server`` (session) and ``postgres_url`` (a new empty database per test);
bench and other helpers can use :class:`PostgresServer` directly.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

URL_VARIABLE = "THREADKEEPER_TEST_POSTGRES_URL"
REQUIRE_VARIABLE = "THREADKEEPER_REQUIRE_POSTGRES"
START_TIMEOUT_S = 60


class PostgresUnavailable(RuntimeError):
    """No server binaries and no URL: the Postgres leg cannot run here."""


def find_bin_dir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: PATH first, then the newest Debian cluster version."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


class PostgresServer:
    """A running server (ours, or the one named by the environment) that hands out fresh databases."""

    def __init__(self, admin_url: str, *, owned: Path | None = None, run_as: list[str] | None = None) -> None:
        self.admin_url = admin_url
        self._owned = owned
        self._run_as = run_as or []
        self._names = itertools.count(1)

    @classmethod
    def start(cls, *, durable: bool = False) -> PostgresServer:
        """initdb + pg_ctl start into a new temp folder; raises PostgresUnavailable without the binaries."""
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise PostgresUnavailable("no initdb/pg_ctl on PATH or under /usr/lib/postgresql")
        run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        # As root, the folder must be one the postgres user can reach: /tmp, whatever TMPDIR says.
        root = Path(tempfile.mkdtemp(prefix="threadkeeper-pg-", dir="/tmp" if run_as else None))
        if run_as:
            shutil.chown(root, user="postgres", group="postgres")
        data = root / "data"
        port = _free_port()
        settings = [
            "-c listen_addresses=127.0.0.1",
            f"-c port={port}",
            f"-c unix_socket_directories={root}",
            "-c max_connections=200",
        ]
        if not durable:
            settings += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        try:
            subprocess.run(
                [*run_as, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                 "--locale=C.UTF-8", "--no-sync"],
                check=True, capture_output=True, timeout=START_TIMEOUT_S,
            )  # fmt: skip
            subprocess.run(
                [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w",
                 "-t", str(START_TIMEOUT_S), "-o", " ".join(settings), "start"],
                check=True, capture_output=True, timeout=START_TIMEOUT_S + 5,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            log = (root / "server.log").read_text(errors="replace") if (root / "server.log").exists() else ""
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"could not start Postgres: {exc.stderr.decode(errors='replace')}\n{log}") from exc
        server = cls(f"postgresql://postgres@127.0.0.1:{port}/postgres", owned=root, run_as=run_as)
        server._bin_dir = bin_dir
        return server

    _bin_dir: Path | None = None

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"tk_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return with_database(self.admin_url, name)

    def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self._owned is None or self._bin_dir is None:
            return
        with contextlib.suppress(subprocess.SubprocessError):
            subprocess.run(
                [*self._run_as, str(self._bin_dir / "pg_ctl"), "-D", str(self._owned / "data"), "-m", "immediate",
                 "-w", "stop"],
                check=False, capture_output=True, timeout=START_TIMEOUT_S,
            )  # fmt: skip
        shutil.rmtree(self._owned, ignore_errors=True)


def postgres_required() -> bool:
    return os.environ.get(REQUIRE_VARIABLE, "") not in ("", "0")


@contextlib.contextmanager
def running_server(*, durable: bool = False) -> Iterator[PostgresServer]:
    """The environment's server, or a new throwaway one stopped on exit."""
    url = os.environ.get(URL_VARIABLE)
    if url:
        yield PostgresServer(url)
        return
    server = PostgresServer.start(durable=durable)
    try:
        yield server
    finally:
        server.stop()


_skipped: list[str] = []  # the reason the Postgres leg was skipped, for the end-of-run notice


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One server for the whole test session; skipped (or failed, in CI) when none can run here."""
    try:
        with running_server() as server:
            yield server
    except PostgresUnavailable as exc:
        if postgres_required():
            pytest.fail(f"{REQUIRE_VARIABLE} is set but Postgres cannot run: {exc}")
        notice = f"Postgres leg skipped: {exc} (install postgresql, or set {URL_VARIABLE})"
        _skipped.append(notice)
        pytest.skip(notice)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say once, at the end of the run, that the Postgres half of the contract suite did not run."""
    if _skipped:
        terminalreporter.write_line(_skipped[0], yellow=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh empty database on the session's server, dropped after the test."""
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url)
