"""Gauge helpers for scenarios' arms (:meth:`chaos.scenario.ArmContext.gauge`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["LoopStall", "per_sample", "per_second"]


def per_sample(total: Callable[[], int]) -> Callable[[], float]:
    """A gauge of how much the counter ``total`` grew since the previous sample (the first
    sample counts from the moment the gauge was made)."""
    last = [total()]

    def grown() -> float:
        now = total()
        grown, last[0] = now - last[0], now
        return float(grown)

    return grown


class LoopStall:
    """How long the event loop was held up: a task wakes every ``tick`` seconds and keeps the
    longest delay past its deadline; :meth:`read` (the gauge) returns it and starts over.

    A stall of the process (another program on the core, a collection) holds up everything
    on the loop alike: the servers of the topology, the service under test and this task.
    ``run`` it while the load runs (e.g. from the app's ``cleanup_ctx``).
    """

    def __init__(self, tick: float = 0.01) -> None:
        self.tick = tick
        self.worst = 0.0

    async def run(self) -> None:
        """Measure until cancelled."""
        while True:
            due = time.monotonic() + self.tick
            await asyncio.sleep(self.tick)
            self.worst = max(self.worst, time.monotonic() - due)

    def read(self) -> float:
        worst, self.worst = self.worst, 0.0
        return worst


def per_second(total: Callable[[], int]) -> Callable[[], float]:
    """A gauge of how fast the counter ``total`` grew since the previous sample, per second of
    the time actually elapsed between the two (a late sample does not inflate the rate)."""
    last = [total(), time.monotonic()]

    def rate() -> float:
        now, at = total(), time.monotonic()
        grown, elapsed = now - last[0], at - last[1]
        last[0], last[1] = now, at
        return grown / elapsed if elapsed > 0 else 0.0

    return rate
