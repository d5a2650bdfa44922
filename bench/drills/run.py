"""Run the reliability drills and print the R-table: ``python -m bench.drills.run`` (``--markdown FILE``)."""

from __future__ import annotations

import argparse
import asyncio
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from bench.common import Result, print_table
from bench.drills import in_process, kill_restart


async def run_all() -> list[Result]:
    print("running R2-R5 ...", flush=True)
    results = await in_process.run()
    print("running R1 ...", flush=True)
    return await kill_restart.run() + results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()
    print_table(asyncio.run(run_all()), markdown=args.markdown)


if __name__ == "__main__":
    main()
