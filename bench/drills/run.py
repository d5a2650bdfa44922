"""Run the reliability drills and print the R-table: ``python -m bench.drills.run`` (``--markdown FILE``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
from datetime import UTC, datetime

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from bench.common import TABLE_HEAD, Result
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
    results = asyncio.run(run_all())
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    stamp = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine}"
    table = "\n".join([TABLE_HEAD, *(r.row() for r in results)])
    print(f"\n{stamp}\n{table}")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as out:
            out.write(f"{stamp}\n\n{table}\n")


if __name__ == "__main__":
    main()
