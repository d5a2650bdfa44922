"""Run every benchmark and print the P-table: ``python -m bench.run`` (``--markdown FILE`` also writes it).

Each figure is a ratio against a baseline measured in the same run, or a count; the machine is noisy, the
ratios much less so.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
from datetime import UTC, datetime

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from bench import catch_up, latency, memory, slack_calls, throughput
from bench.common import TABLE_HEAD, Result

SUITES = {"P1+P3": latency.run, "P2": throughput.run, "P4": catch_up.run, "P5": memory.run, "P6": slack_calls.run}


async def run_all(only: set[str] | None) -> list[Result]:
    results: list[Result] = []
    for name, suite in SUITES.items():
        if only and not (only & set(name.split("+"))):
            continue
        print(f"running {name} ...", flush=True)
        results.extend(await suite())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", help="benchmark ids to run, e.g. P2 P4")
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()
    results = asyncio.run(run_all(set(args.only) if args.only else None))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    stamp = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine}"
    table = "\n".join([TABLE_HEAD, *(r.row() for r in sorted(results, key=lambda r: r.id))])
    print(f"\n{stamp}\n{table}")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as out:
            out.write(f"{stamp}\n\n{table}\n")


if __name__ == "__main__":
    main()
