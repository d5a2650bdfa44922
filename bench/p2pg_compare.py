"""P2-pg, one worker, this checkout against another (a base commit) in one command: per-message counts, CPU, rate.

``python -m bench.p2pg_compare --base /path/to/base/checkout [--rounds 6] [--profile]``

Wall-clock rates swing 2-3x on a shared machine, so besides the rate this prints what does not depend on the
load, per logged message of the measured phase: process CPU time, round trips to Postgres (every wait of a
psycopg connection: a statement, a BEGIN, a COMMIT), statements, pool checkouts, and with ``--profile`` the
Python function calls counted by cProfile. Each round runs both sides on fresh databases of one durable server,
alternately (the order flips every round); the child is ``bench/pg_throughput.py``'s P2-pg worker replayed on
the side's own code (``PYTHONPATH`` and ``cwd`` point at that checkout), instrumented only around the phase P2-pg
times. It prints every figure, then the medians and the new/base ratios (above 1 means this checkout is faster).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
CHILD_TIMEOUT_S = 600
# The set-up (not measured) in slices: 1,000 threads at once wait over 10 s for the pool's 10 connections when
# the machine is loaded, and the pool then gives up. The measured phase is P2-pg's: all messages at once.
SETUP_AT_ONCE = 100
LEASE_ACQUIRE = "INSERT INTO leases"


class Probe:
    """Counts psycopg round trips, statements (by their first words) and pool checkouts, phase by phase.

    It wraps the methods of psycopg's own classes, which both checkouts import: every round trip is one
    ``AsyncConnection.wait`` (a statement, a BEGIN, a COMMIT), every statement a cursor's ``execute``.
    """

    def __init__(self) -> None:
        import psycopg
        import psycopg_pool

        self.counts: Counter[str] = Counter()
        self._wrap(psycopg.AsyncConnection, "wait", lambda args: "round_trips")
        self._wrap(psycopg.AsyncCursor, "execute", _statement)
        self._wrap(psycopg.AsyncCursor, "executemany", _statement)
        self._wrap(psycopg_pool.AsyncConnectionPool, "getconn", lambda args: "checkouts")

    def _wrap(self, cls: Any, name: str, key: Callable[[tuple[Any, ...]], str]) -> None:
        original, counts = getattr(cls, name), self.counts

        async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            counts[key(args)] += 1
            return await original(self, *args, **kwargs)

        setattr(cls, name, counted)

    @contextlib.asynccontextmanager
    async def phase(self, url: str, into: dict[str, Any]) -> AsyncIterator[None]:
        """Fill ``into`` with what the block cost: counts, this process's and the server's CPU, wall time."""
        postmaster = await _postmaster(url)
        counts, server = Counter(self.counts), _server_cpu(postmaster)
        cpu, started = time.process_time(), time.perf_counter()
        yield
        into["elapsed"], into["cpu"] = time.perf_counter() - started, time.process_time() - cpu
        into["server_cpu"] = _server_cpu(postmaster) - server
        spent = self.counts - counts
        into["statements"] = {k.removeprefix("sql: "): v for k, v in spent.items() if k.startswith("sql: ")}
        into |= {k: v for k, v in spent.items() if not k.startswith("sql: ")}
        into.setdefault("checkouts", 0)
        into.setdefault("round_trips", 0)


def _statement(args: tuple[Any, ...]) -> str:
    return "sql: " + " ".join(str(args[0]).split())[:48]


def _server_cpu(postmaster: int) -> float:
    """CPU seconds of the server's live processes (the postmaster's children: backends, writers, autovacuum)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def _postmaster(url: str) -> int:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        cursor = await connection.execute("SELECT pg_backend_pid()")
        row = await cursor.fetchone()
        assert row is not None
        return _parent_pid(int(row[0]))  # while the backend lives


def _parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


async def _child(url: str, *, profile: bool, steady: bool) -> None:
    """bench/pg_throughput.py's one-worker child on the checkout's code, measured phase by phase."""
    probe = Probe()
    from bench.common import settings_for
    from bench.pg_throughput import PER_THREAD, THREADS, _key
    from bots.app import open_router
    from bots.seam.messages import Author, IncomingMessage
    from tests.fakes.llm import FakeLLM
    from tests.router_harness import RecordingOutbox

    author = Author("u", "User")
    setup: dict[str, Any] = {}
    measured: dict[str, Any] = {}
    profiler = cProfile.Profile() if profile else None

    async def in_slices(router: Any, prefix: str, text: str) -> None:
        for start in range(0, THREADS, SETUP_AT_ONCE):
            threads = range(start, min(start + SETUP_AT_ONCE, THREADS))
            await asyncio.gather(
                *(router.handle_message(IncomingMessage(_key(i), f"{prefix}-{i}", author, text)) for i in threads)
            )
            if steady:  # what a live worker's renewal loop does every 5 s (bots/workers/ownership.py)
                await router.ownership.renew()

    with tempfile.TemporaryDirectory() as tmp:
        async with FakeLLM() as fake:
            settings = settings_for(fake, Path(tmp) / "unused.db", database_url=url)
            async with open_router(settings) as router:
                router.register_outbox("test", RecordingOutbox())
                await in_slices(router, "old", "old")
                await router.idle()
            async with open_router(settings) as router:  # a restart: every thread is orphaned
                outbox = RecordingOutbox()
                router.register_outbox("test", outbox)
                async with probe.phase(url, setup):  # each thread: taken, its card posted
                    await in_slices(router, "first", "hi")
                assert len(outbox.cards_posted) == THREADS
                if steady:
                    await router.ownership.renew()
                messages = [
                    IncomingMessage(_key(i), f"m-{i}-{n}", author, f"message {n}")
                    for n in range(PER_THREAD)
                    for i in range(THREADS)
                ]
                async with probe.phase(url, measured):
                    if profiler is not None:
                        profiler.enable()
                    await asyncio.gather(*(router.handle_message(m) for m in messages))
                    if profiler is not None:
                        profiler.disable()
    result: dict[str, Any] = {"messages": len(messages), "threads": THREADS, "setup": setup, "measured": measured}
    if profiler is not None:
        stats = pstats.Stats(profiler)
        measured["calls"] = stats.total_calls  # type: ignore[attr-defined]
        top = sorted(stats.stats.items(), key=lambda kv: -kv[1][1])[:25]  # type: ignore[attr-defined]
        measured["top"] = [f"{v[1]:>8} {Path(k[0]).name}:{k[1]} {k[2]}" for k, v in top]
        if os.environ.get("P2PG_PROFILE_DUMP"):
            stats.dump_stats(os.environ["P2PG_PROFILE_DUMP"])
    print("RESULT " + json.dumps(result), flush=True)


def _run_side(checkout: Path, url: str, *, profile: bool, steady: bool) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(checkout), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    command = [sys.executable, str(HERE), "--child", url]
    command += (["--profile"] if profile else []) + (["--steady"] if steady else [])
    done = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    if "RESULT " not in done.stdout:
        raise RuntimeError(f"the P2-pg child in {checkout} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.split("RESULT ", 1)[1])
    return result


def _figures(result: dict[str, Any]) -> dict[str, float]:
    """The measured phase per logged message, and the set-up's time per thread (it decides the lease re-takes)."""
    n, m, setup = result["messages"], result["measured"], result["setup"]
    figures = {
        "rate/s": n / m["elapsed"],
        "cpu_us": m["cpu"] / n * 1e6,
        "server_cpu_us": m["server_cpu"] / n * 1e6,
        "round_trips": m["round_trips"] / n,
        "statements": sum(m["statements"].values()) / n,
        "checkouts": m["checkouts"] / n,
        "lease_retakes": sum(v for k, v in m["statements"].items() if k.startswith(LEASE_ACQUIRE)),
        "setup_s": setup["elapsed"],
        "setup_cpu_ms": setup["cpu"] / result["threads"] * 1e3,
        "setup_trips": setup["round_trips"] / result["threads"],
    }
    if "calls" in m:
        figures["py_calls"] = m["calls"] / n
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, help="the checkout to compare against (e.g. a worktree of e56753d)")
    parser.add_argument("--new", type=Path, default=ROOT, help="the checkout measured (default: this one)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--profile", action="store_true", help="count Python calls with cProfile (slows the rate)")
    parser.add_argument("--verbose", action="store_true", help="each run's statements (and top calls, --profile)")
    parser.add_argument(
        "--as-is",
        action="store_true",
        help="skip the lease renewal before the measured phase (P2-pg as bench/pg_throughput.py runs it)",
    )
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--steady", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(_child(args.child, profile=args.profile, steady=args.steady))
        return
    if args.base is None:
        parser.error("--base is required")
    sys.path.insert(0, str(ROOT))
    from tests.fakes.postgres import running_server

    sides = {"base": args.base.resolve(), "new": args.new.resolve()}
    figures: dict[str, list[dict[str, float]]] = {"base": [], "new": []}
    print(f"base {sides['base']}\nnew  {sides['new']}\nload average before: {os.getloadavg()}", flush=True)
    with running_server(durable=True) as server:
        for round_ in range(args.rounds):
            for side in ("base", "new") if round_ % 2 == 0 else ("new", "base"):
                url = server.create_database()
                try:
                    result = _run_side(sides[side], url, profile=args.profile, steady=not args.as_is)
                except RuntimeError as exc:  # e.g. the pool's 10 s timeout in the set-up on a very loaded machine
                    print(f"round {round_ + 1} {side:4}  failed, not counted: {str(exc).splitlines()[-1]}")
                    continue
                finally:
                    server.drop_database(url)
                figures[side].append(_figures(result))
                shown = "  ".join(f"{k} {v:,.2f}" for k, v in figures[side][-1].items())
                print(f"round {round_ + 1} {side:4}  {shown}  load {os.getloadavg()[0]:.2f}", flush=True)
                if args.verbose:
                    print(f"    statements: {result['measured']['statements']}")
                    print("\n".join(f"    {line}" for line in result["measured"].get("top", [])))
    print(f"load average after: {os.getloadavg()}")
    print("\nmedians (the measured phase per logged message; rate in messages/s)")
    if not figures["base"] or not figures["new"]:
        return
    for key in figures["new"][0]:
        base = statistics.median(f[key] for f in figures["base"])
        new = statistics.median(f[key] for f in figures["new"])
        print(f"  {key:14} base {base:>10,.2f}  new {new:>10,.2f}  new/base {new / base if base else float('nan'):.3f}")
    rates = [statistics.median(f["rate/s"] for f in figures[side]) for side in ("base", "new")]
    print(f"P2-pg, 1 worker: new/base {rates[1] / rates[0]:.2f} (medians of {args.rounds}; the guard: >= 0.90)")


if __name__ == "__main__":
    main()
