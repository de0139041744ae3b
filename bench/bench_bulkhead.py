"""Bulkhead benchmark: what :class:`~resilient.bulkhead.Bulkhead` costs to admit and release
one call, against an ``asyncio.Semaphore`` (the bound a bulkhead replaces) in the same run.

Run: ``.venv/bin/python bench/bench_bulkhead.py`` (``--quick`` for a short run).

``async with`` around nothing, N times in a row on one event loop, a permit always free (the
cost of the path every call takes; waiting is the dependency's time, not the bulkhead's):

- ``asyncio.Semaphore(25)``: ``async with semaphore``;
- ``Bulkhead (FixedLimit)``: ``async with bulkhead.acquire()``, the default limit of 25;
- ``Bulkhead (AIMDLimit)`` and ``Bulkhead (Gradient2Limit)``: the same, with an adaptive
  limit that hears a :class:`~resilient.bulkhead.Sample` of every call (limits wide enough
  never to hold a call up);
- ``Bulkhead + AdaptiveThrottle``: the fixed limit with the SRE throttle in front.

Rounds are interleaved (each round runs each contender once, in a rotating order): the figure
of each is the median of its rounds, with the spread beside it, and its ratio to the semaphore
is taken round by round (its median shown). No target: the figures say what the bound, the
line, the samples and the throttle cost over a bare semaphore.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

from _figures import Figure, interleaved, run_size

from resilient.bulkhead import (
    AdaptiveThrottle,
    AIMDLimit,
    AIMDLimitOptions,
    Bulkhead,
    Gradient2Limit,
    Gradient2LimitOptions,
)
from resilient.events import EventBus

Contender = Callable[[int], Awaitable[float]]
SEMAPHORE = "asyncio.Semaphore"


def quiet() -> EventBus:
    return EventBus(log_when_unobserved=False)


def semaphore() -> Contender:
    gate = asyncio.Semaphore(25)

    async def run(count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            async with gate:
                pass
        return time.perf_counter() - started

    return run


def bulkhead(made: Bulkhead) -> Contender:
    async def run(count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            async with made.acquire():
                pass
        return time.perf_counter() - started

    return run


def contenders() -> list[tuple[str, Contender]]:
    wide = {"initial_limit": 25, "min_limit": 25, "max_limit": 25}
    return [
        (SEMAPHORE, semaphore()),
        ("Bulkhead (FixedLimit)", bulkhead(Bulkhead("bench", events=quiet()))),
        (
            "Bulkhead (AIMDLimit)",
            bulkhead(Bulkhead("bench", limit=AIMDLimit(AIMDLimitOptions(**wide)), events=quiet())),
        ),
        (
            "Bulkhead (Gradient2Limit)",
            bulkhead(
                Bulkhead(
                    "bench", limit=Gradient2Limit(Gradient2LimitOptions(**wide)), events=quiet()
                )
            ),
        ),
        (
            "Bulkhead + AdaptiveThrottle",
            bulkhead(
                Bulkhead(
                    "bench", throttle=AdaptiveThrottle("bench", events=quiet()), events=quiet()
                )
            ),
        ),
    ]


async def measure(count: int, rounds: int) -> dict[str, Figure]:
    return await interleaved(dict(contenders()), count, rounds)


def report(figures: dict[str, Figure], count: int, rounds: int) -> int:
    print(f"bulkhead benchmark: {count:,} acquire+release per round, {rounds} rounds")
    print(f"{'contender':30} {'us/op':>7} {'spread':>11}   {'x semaphore (per round)':>24}")
    base = figures[SEMAPHORE]
    for figure in figures.values():
        line = f"{figure.name:30} {figure.median:7.2f} {figure.spread:>11}"
        if figure is not base:
            ratios = [
                mine / theirs for mine, theirs in zip(figure.rounds, base.rounds, strict=True)
            ]
            line += f"   {statistics.median(ratios):6.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
        print(line)
    return 0


def main() -> int:
    count, rounds = run_size(__doc__, "operations", 200_000, 7, quick=20_000)
    return asyncio.run(_run(count, rounds))


async def _run(count: int, rounds: int) -> int:
    return report(await measure(count, rounds), count, rounds)


if __name__ == "__main__":
    sys.exit(main())
