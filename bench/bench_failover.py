"""Failover benchmark: what hedging does to the tail, and what it costs.

Run: ``.venv/bin/python bench/bench_failover.py`` (``--quick`` for a short run).

Two providers in virtual time (exact and repeatable: the figures are latencies, not speed):
the primary answers in 20 ms +-5 ms, and 5% of its answers are delayed by 500 ms; the
secondary answers in 25 ms +-5 ms. N requests one after another through a
:class:`~resilient.failover.Failover` with hedging (its defaults: one hedge after the primary's
measured p95), and the same requests with hedging off, in interleaved rounds of fresh seeds.

Targets (issue 12): with hedging, p99 within 3x the p50; the extra load (hedges sent per
request) under 10%. The exit status is 1 when a target fails.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys

from _figures import Figure, run_size

from resilient.clock import VirtualClock
from resilient.events import EventBus
from resilient.failover import Failover, FailoverOptions, Provider

SLOW_SHARE = 0.05
SLOW_DELAY = 0.5


async def run(count: int, seed: int, hedge: bool) -> tuple[float, float, float]:
    """(p50, p99, hedges per request) of ``count`` requests."""
    clock = VirtualClock(autojump=True)
    rng = random.Random(seed)

    async def primary(request: int) -> str:
        delay = rng.uniform(0.015, 0.025) + (SLOW_DELAY if rng.random() < SLOW_SHARE else 0.0)
        await clock.sleep(delay)
        return "primary"

    async def secondary(request: int) -> str:
        await clock.sleep(rng.uniform(0.020, 0.030))
        return "secondary"

    failover: Failover[int, str] = Failover(
        [Provider("primary", primary), Provider("secondary", secondary)],
        FailoverOptions(timeout=2.0, hedge=hedge),
        random=random.Random(seed),
        clock=clock,
        events=EventBus(log_when_unobserved=False),
    )
    latencies = []
    for i in range(count):
        started = clock.monotonic()
        await failover.call(i)
        latencies.append(clock.monotonic() - started)
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    hedges = failover.stats()["secondary"].hedges / count
    return p50, p99, hedges


def main() -> int:
    count, rounds = run_size(__doc__, "requests", 20_000, 5, quick=2_000)
    figures = {
        name: Figure(name, [])
        for name in (
            "p50 hedged (ms)",
            "p99 hedged (ms)",
            "p99 unhedged (ms)",
            "hedges/request (%)",
        )
    }
    ratios = []
    for seed in range(rounds):
        p50, p99, hedges = asyncio.run(run(count, seed, hedge=True))
        _, p99_plain, _ = asyncio.run(run(count, seed, hedge=False))
        figures["p50 hedged (ms)"].rounds.append(p50 * 1000)
        figures["p99 hedged (ms)"].rounds.append(p99 * 1000)
        figures["p99 unhedged (ms)"].rounds.append(p99_plain * 1000)
        figures["hedges/request (%)"].rounds.append(hedges * 100)
        ratios.append(p99 / p50)
    print(f"failover benchmark: {count:,} requests per round, {rounds} rounds (virtual time)")
    for figure in figures.values():
        print(f"{figure.name:24} {figure.median:8.2f} {figure.spread:>15}")
    ratio = statistics.median(ratios)
    extra = figures["hedges/request (%)"].median
    tail_ok = ratio <= 3.0
    load_ok = extra < 10.0
    print(
        f"p99 / p50 with hedging {ratio:.2f}x ({min(ratios):.2f}-{max(ratios):.2f})   <= 3x "
        f"{'PASS' if tail_ok else 'FAIL'}"
    )
    print(f"extra load {extra:.2f}% of requests   < 10% {'PASS' if load_ok else 'FAIL'}")
    return 0 if tail_ok and load_ok else 1


if __name__ == "__main__":
    sys.exit(main())
