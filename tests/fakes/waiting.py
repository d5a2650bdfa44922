"""The one polling wait of the test kit and the benchmarks: until a condition holds, or fail saying what was awaited.

Every fake, test and benchmark waits with this; a test that asserts something did *not* happen first waits here
for a positive signal (an ack, a handled counter) so that it can fail for real.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

POLL_S = 0.01
FINE_POLL_S = 0.0005  # for measurements: the wait must not blur what is timed


async def wait_until(
    predicate: Callable[[], object], timeout: float = 5.0, *, what: str = "condition", interval_s: float = POLL_S
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        await asyncio.sleep(interval_s)
