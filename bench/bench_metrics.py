"""Metrics benchmark: what a configured :class:`~resilient.metrics.prometheus.PrometheusSink`
adds to a limiter decision and to a breaker call, against the same pattern with no sink, in
the same run.

Run: ``.venv/bin/python bench/bench_metrics.py`` (``--quick`` for a short run), or
``python3 dev.py bench metrics``.

Contenders, N calls each per round:

- a :class:`~resilient.ratelimit.FailOpenGuard` decision (a
  :class:`~resilient.ratelimit.LocalLimiter` primary, 1,000 keys in turn), bare and with a
  sink that listens on the guard's bus and watches the guard and its breaker, registered on a
  live ``CollectorRegistry``;
- ``await breaker.call(fn)`` on a closed :class:`~resilient.breaker.CircuitBreaker`, bare and
  watched likewise;
- for reference, what counting in the hot path would have cost instead: the bare decision
  plus ``counter.labels(...).inc()`` on a prometheus-client ``Counter`` (shown, not a
  contender: the sink reads the guard's own stats at scrape time instead).

Each "with sink" figure is taken minus the bare figure of the same round (the microseconds a
sink adds per call); rounds are interleaved (each round runs every contender once, in a
rotating order), and each figure is the median of its rounds with the spread beside it. The
cost of a scrape itself (``generate_latest`` of the registry) is shown too: it is paid per
scrape, not per call. Target (issue 13): under 1 us added per decision and per call. The exit
status is 1 when a target fails.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

from _figures import Figure, interleaved, run_size, timed_loop
from prometheus_client import CollectorRegistry, Counter, generate_latest

from resilient import CircuitBreaker, FailOpenGuard, LocalLimiter, Rate
from resilient.events import EventBus
from resilient.metrics.prometheus import PrometheusSink

Loop = Callable[[int], Awaitable[float]]
TARGET_US = 1.0
KEYS = [f"user-{i}" for i in range(1000)]
RATE = Rate(1_000_000, 1.0)


def quiet() -> EventBus:
    return EventBus(log_when_unobserved=False)


async def nothing() -> None:
    return None


def guard_on(bus: EventBus) -> FailOpenGuard:
    return FailOpenGuard(
        LocalLimiter(RATE, events=bus), fallback=LocalLimiter(RATE, events=bus), events=bus
    )


def deciding(guard: FailOpenGuard) -> Loop:
    async def body(count: int) -> None:
        decide, keys = guard.decide, KEYS
        for i in range(count):
            await decide(keys[i % 1000])

    return timed_loop(body)


def calling(breaker: CircuitBreaker) -> Loop:
    async def body(count: int) -> None:
        call = breaker.call
        for _ in range(count):
            await call(nothing)

    return timed_loop(body)


def contenders(registry: CollectorRegistry) -> dict[str, Loop]:
    bare_guard = guard_on(quiet())
    bare_breaker = CircuitBreaker("bench", events=quiet())
    bus = quiet()
    sink = PrometheusSink(registry, events=bus)
    watched_guard = sink.watch(guard_on(bus), "bench")
    sink.watch(watched_guard.breaker)
    watched_breaker = sink.watch(CircuitBreaker("bench", events=bus))
    counted_guard = guard_on(quiet())
    counter = Counter("bench_decisions", "reference", ["limiter", "source"], registry=registry)

    async def decide_and_count(count: int) -> None:
        decide, keys, labels = counted_guard.decide, KEYS, counter.labels
        for i in range(count):
            decision = await decide(keys[i % 1000])
            labels("bench", decision.source.value).inc()

    return {
        "decision, bare": deciding(bare_guard),
        "decision, with sink": deciding(watched_guard),
        "decision + Counter.inc (reference)": timed_loop(decide_and_count),
        "breaker call, bare": calling(bare_breaker),
        "breaker call, with sink": calling(watched_breaker),
    }


async def measure(loops: dict[str, Loop], count: int, rounds: int) -> dict[str, list[float]]:
    """Microseconds per call, per contender, one figure per round."""
    figures = await interleaved(loops, count, rounds)
    return {name: figure.rounds for name, figure in figures.items()}


def scrape_us(registry: CollectorRegistry, times: int = 200) -> Figure:
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(times):
            generate_latest(registry)
        rounds.append((time.perf_counter() - started) / times * 1e6)
    return Figure("scrape (generate_latest)", rounds)


def main() -> int:
    count, rounds = run_size(__doc__, "calls", 200_000, 9, quick=20_000)
    registry = CollectorRegistry()

    async def run() -> dict[str, list[float]]:
        return await measure(contenders(registry), count, rounds)

    raw = asyncio.run(run())
    print(f"metrics benchmark: {count:,} calls per round, {rounds} rounds, interleaved")
    print(f"\n{'contender':36} {'us/call':>8} {'spread':>13}")
    for name, values in raw.items():
        figure = Figure(name, values)
        print(f"{name:36} {figure.median:8.3f} {figure.spread:>13}")
    print(f"\nadded per call over the bare path of the same round (target < {TARGET_US} us)")
    ok = True
    for what in ("decision", "breaker call"):
        added = [
            mine - bare
            for mine, bare in zip(raw[f"{what}, with sink"], raw[f"{what}, bare"], strict=True)
        ]
        figure = Figure(what, added)
        passed = figure.median < TARGET_US
        ok = ok and passed
        ratio = statistics.median(
            mine / bare
            for mine, bare in zip(raw[f"{what}, with sink"], raw[f"{what}, bare"], strict=True)
        )
        print(
            f"{what + ' + sink':36} {figure.median:+8.3f} {figure.spread:>13}  "
            f"({ratio:.2f}x bare)  {'PASS' if passed else 'FAIL'}"
        )
    reference = [
        mine - bare
        for mine, bare in zip(
            raw["decision + Counter.inc (reference)"], raw["decision, bare"], strict=True
        )
    ]
    figure = Figure("reference", reference)
    print(f"{'decision + Counter.inc (reference)':36} {figure.median:+8.3f} {figure.spread:>13}")
    scrape = scrape_us(registry)
    print(
        f"\n{scrape.name:36} {scrape.median:8.1f} {scrape.spread:>13}  us per scrape "
        "(3 watched instances, the whole scheme)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
