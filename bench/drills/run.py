"""Run the reliability drills and print the R-table: ``python -m bench.drills.run`` (``--markdown FILE``)."""

from __future__ import annotations

import argparse
import asyncio
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from bench.common import Result, print_table
from bench.drills import bad_input, in_process, kill_restart, r1_tools, r6_workers, r7_rolling, security


async def run_all(only: list[str] | None = None) -> list[Result]:
    drills = {
        "R2 R3": in_process.run,
        "R4": bad_input.run,
        "R5": security.run,
        "R1": kill_restart.run,
        "R1-tools": r1_tools.run,
        "R6": r6_workers.run,
        "R7": r7_rolling.run,
    }
    results: list[Result] = []
    for ids, drill in drills.items():
        if only and not set(only) & set(ids.split()):
            continue
        print(f"running {ids} ...", flush=True)
        results += await drill()
    return sorted(results, key=lambda r: r.id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--only", nargs="*", help="drill ids to run, e.g. R6 R7")
    args = parser.parse_args()
    print_table(asyncio.run(run_all(args.only)), markdown=args.markdown)


if __name__ == "__main__":
    main()
