"""Run every benchmark and print the P-table: ``python -m bench.run`` (``--markdown FILE`` also writes it).

Each suite runs in a process of its own, so one suite's memory high-water mark or warm caches never flatter
the next (P5 measures RSS). Each figure is a ratio against a baseline measured in the same run, or a count.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import subprocess
import sys

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from bench.common import ROOT, Result, print_table

SUITES = {
    "P1+P3": "latency",
    "P2": "throughput",
    "P4": "catch_up",
    "P5": "memory",
    "P6": "slack_calls",
    "P7": "tool_step",
    "P2-pg": "pg_throughput",
    "P8": "worker_throughput",
    "S1+S2": "storage_backends",
}
RESULT_MARK = "BENCH-RESULTS "


def run_suite(module: str) -> list[Result]:
    """``python -m bench.run --suite MODULE`` in a child process; its results come back as JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--suite", module], cwd=ROOT, capture_output=True, text=True, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            return [Result(**fields) for fields in json.loads(line[len(RESULT_MARK) :])]
    sys.stderr.write(done.stderr[-4000:])
    raise SystemExit(f"benchmark suite {module} failed (exit code {done.returncode})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", help="benchmark ids to run, e.g. P2 P4")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--suite", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.suite:
        module = __import__(f"bench.{args.suite}", fromlist=["run"])
        results = asyncio.run(module.run())
        print(RESULT_MARK + json.dumps([dataclasses.asdict(r) for r in results]))
        return
    results: list[Result] = []
    for ids, module in SUITES.items():
        if args.only and not set(args.only) & set(ids.split("+")):
            continue
        print(f"running {ids} ...", flush=True)
        results.extend(run_suite(module))
    print_table(sorted(results, key=lambda r: r.id), markdown=args.markdown)


if __name__ == "__main__":
    main()
