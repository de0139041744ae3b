"""Circuit breaker benchmark: what :class:`~resilient.breaker.CircuitBreaker` adds to a call on
the success path and what a rejection costs, against pybreaker, aiobreaker, purgatory and
circuitbreaker in the same run.

Run: ``.venv/bin/python bench/bench_breaker.py`` (``--quick`` for a short run).

Success path: N awaits of a coroutine that returns at once, through a closed breaker with
the default policy (consecutive failures: every peer counts so), minus N bare awaits of the
same coroutine measured in the same round: the microseconds each way adds per call.

- ours: ``await breaker.call(fn)``, a function decorated ``@breaker``, ``async with
  breaker``, ``async with breaker.calling()``; and ``call()`` with a
  :class:`~resilient.breaker.FailureRate` policy (a count window and slow calls: two clock
  reads and a ring per call), shown, not judged;
- pybreaker: ``with breaker.calling(): await fn()`` (it runs coroutines only through tornado);
- aiobreaker: ``await breaker.call_async(fn)``;
- purgatory: ``async with breaker: await fn()`` (the breaker got once from its factory);
- circuitbreaker: a function decorated ``@circuit``, ``await breaker.call_async(fn)``, and
  ``with breaker: await fn()``. Only the decorator looks at the state: ``call_async`` and
  ``with`` let a call through an open circuit (its ``__enter__`` reads nothing), so they are
  no breaker on the way in; they are shown, and not among the peers a target is judged
  against (see :data:`NEVER_REFUSE`).

Rejection: the same through an open circuit, each refusal caught (``try/except``), minus the
bare loop: what refusing costs. circuitbreaker refuses only through its decorator (its
``call_async`` and ``with`` do not look at the state), so that is its rejection.

Rounds are interleaved (each round runs every contender once, in a rotating order): each
figure is the median of its rounds, with the spread (lowest-highest) beside it. Targets (issue
12): ``call()`` on the success path no slower than the cheapest peer way, and a rejection
through ``call()`` no slower than the cheapest peer rejection, the ratio taken round by round
and its median judged. The exit status is 1 when a target fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import statistics
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import aiobreaker
import circuitbreaker
import pybreaker
from _figures import Figure, interleaved, over, run_size, timed_loop
from purgatory import AsyncCircuitBreakerFactory

from resilient.breaker import BreakerOptions, CircuitBreaker, CountWindow, FailureRate
from resilient.events import EventBus

Loop = Callable[[int], Awaitable[float]]
NEVER_REFUSE = {"circuitbreaker call_async()", "circuitbreaker with"}
"""Peer ways that never refuse a call (circuitbreaker checks the state only in its decorator):
shown, not judged against."""
LONG = 10**6
"""Seconds an open circuit stays open in the rejection rounds (longer than any run)."""


async def nothing() -> None:
    return None


async def boom() -> None:
    raise ConnectionError("down")


def quiet() -> EventBus:
    return EventBus(log_when_unobserved=False)


# -- the success path ----------------------------------------------------------------------


async def success_contenders() -> dict[str, Loop]:
    ours = CircuitBreaker("bench", events=quiet())
    rate = CircuitBreaker(
        "rate", policy=FailureRate(window=CountWindow(100), minimum_calls=100), events=quiet()
    )
    decorated = ours(nothing)
    pb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    ab = aiobreaker.CircuitBreaker(fail_max=5)
    factory = AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=30)
    purgatory = await factory.get_breaker("bench")
    cb = circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=30, name="bench")
    cb_decorated = cb(nothing)

    async def bare(count: int) -> None:
        for _ in range(count):
            await nothing()

    async def call(count: int) -> None:
        for _ in range(count):
            await ours.call(nothing)

    async def decorator(count: int) -> None:
        for _ in range(count):
            await decorated()

    async def async_with(count: int) -> None:
        for _ in range(count):
            async with ours:
                await nothing()

    async def calling(count: int) -> None:
        for _ in range(count):
            async with ours.calling():
                await nothing()

    async def failure_rate(count: int) -> None:
        for _ in range(count):
            await rate.call(nothing)

    async def pybreaker_calling(count: int) -> None:
        for _ in range(count):
            with pb.calling():
                await nothing()

    async def aiobreaker_call(count: int) -> None:
        for _ in range(count):
            await ab.call_async(nothing)

    async def purgatory_with(count: int) -> None:
        for _ in range(count):
            async with purgatory:
                await nothing()

    async def circuitbreaker_decorator(count: int) -> None:
        for _ in range(count):
            await cb_decorated()

    async def circuitbreaker_call(count: int) -> None:
        for _ in range(count):
            await cb.call_async(nothing)

    async def circuitbreaker_with(count: int) -> None:
        for _ in range(count):
            with cb:
                await nothing()

    return {
        "bare await": timed_loop(bare),
        "ours call()": timed_loop(call),
        "ours @breaker": timed_loop(decorator),
        "ours async with breaker": timed_loop(async_with),
        "ours calling()": timed_loop(calling),
        "ours call(), FailureRate": timed_loop(failure_rate),
        "pybreaker calling()": timed_loop(pybreaker_calling),
        "aiobreaker call_async()": timed_loop(aiobreaker_call),
        "purgatory async with": timed_loop(purgatory_with),
        "circuitbreaker @circuit": timed_loop(circuitbreaker_decorator),
        "circuitbreaker call_async()": timed_loop(circuitbreaker_call),
        "circuitbreaker with": timed_loop(circuitbreaker_with),
    }


# -- rejection -----------------------------------------------------------------------------


async def rejection_contenders() -> dict[str, Loop]:
    ours = CircuitBreaker("bench", BreakerOptions(reset_timeout=LONG), events=quiet())
    ours.isolate()  # the same refusal path as open, without a reset timeout to watch
    opened = CircuitBreaker("opened", BreakerOptions(reset_timeout=LONG), events=quiet())
    for _ in range(5):
        with contextlib.suppress(ConnectionError):
            await opened.call(boom)
    pb = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=LONG)
    try:
        with pb.calling():
            await boom()
    except (ConnectionError, pybreaker.CircuitBreakerError):
        pass
    ab = aiobreaker.CircuitBreaker(fail_max=1, timeout_duration=datetime.timedelta(seconds=LONG))
    with contextlib.suppress(ConnectionError, aiobreaker.CircuitBreakerError):
        await ab.call_async(boom)
    factory = AsyncCircuitBreakerFactory(default_threshold=1, default_ttl=LONG)
    purgatory = await factory.get_breaker("bench")
    try:
        async with purgatory:
            await boom()
    except Exception:
        pass
    cb = circuitbreaker.CircuitBreaker(failure_threshold=1, recovery_timeout=LONG, name="rej")
    cb_decorated = cb(boom)
    with contextlib.suppress(ConnectionError):
        await cb_decorated()
    assert cb.opened
    assert opened.retry_after > 0

    async def bare(count: int) -> None:
        for _ in range(count):
            with contextlib.suppress(ConnectionError):
                await nothing()

    def refusing(attempt: Callable[[], Awaitable[Any]], error: Any) -> Loop:
        async def body(count: int) -> None:
            for _ in range(count):
                with contextlib.suppress(error):
                    await attempt()

        return timed_loop(body)

    async def ours_with() -> None:
        async with ours:
            await nothing()

    async def pybreaker_calling() -> None:
        with pb.calling():
            await nothing()

    async def purgatory_with() -> None:
        async with purgatory:
            await nothing()

    from resilient.errors import CircuitOpenError

    return {
        "bare await": timed_loop(bare),
        "ours call(), open": refusing(lambda: opened.call(nothing), CircuitOpenError),
        "ours call(), isolated": refusing(lambda: ours.call(nothing), CircuitOpenError),
        "ours async with breaker": refusing(ours_with, CircuitOpenError),
        "pybreaker calling()": refusing(pybreaker_calling, pybreaker.CircuitBreakerError),
        "aiobreaker call_async()": refusing(
            lambda: ab.call_async(nothing), aiobreaker.CircuitBreakerError
        ),
        "purgatory async with": refusing(purgatory_with, Exception),
        "circuitbreaker @circuit": refusing(cb_decorated, circuitbreaker.CircuitBreakerError),
    }


# -- the rounds and the verdict ------------------------------------------------------------


async def measure(contenders: dict[str, Loop], count: int, rounds: int) -> dict[str, Figure]:
    """Microseconds per call over the bare loop of the same round, per contender."""
    return over(await interleaved(contenders, count, rounds), "bare await")


def verdict(title: str, figures: dict[str, Figure], judged: list[str]) -> bool:
    print(f"\n{title}: microseconds over a bare await (median of rounds, spread)")
    print(f"{'contender':30} {'+us':>7} {'spread':>13}")
    for figure in figures.values():
        note = "  (never refuses: not judged against)" if figure.name in NEVER_REFUSE else ""
        print(f"{figure.name:30} {figure.median:7.3f} {figure.spread:>13}{note}")
    peers = [
        figure
        for name, figure in figures.items()
        if not name.startswith("ours") and name not in NEVER_REFUSE
    ]
    cheapest = [min(values) for values in zip(*(peer.rounds for peer in peers), strict=True)]
    cheapest_name = min(peers, key=lambda figure: figure.median).name
    ok = True
    for name in judged:
        ratios = [
            mine / theirs if theirs > 0 else float("inf")
            for mine, theirs in zip(figures[name].rounds, cheapest, strict=True)
        ]
        ratio = statistics.median(ratios)
        passed = ratio <= 1.0
        ok = ok and passed
        print(
            f"{name + ' / cheapest peer':30} {ratio:7.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
            f"  <= 1x {'PASS' if passed else 'FAIL'}  (cheapest peer by median: {cheapest_name})"
        )
    return ok


def main() -> int:
    count, rounds = run_size(__doc__, "calls", 200_000, 9, quick=20_000)

    async def run() -> int:
        success = await measure(await success_contenders(), count, rounds)
        rejection = await measure(await rejection_contenders(), count, rounds)
        print(f"breaker benchmark: {count:,} calls per round, {rounds} rounds, interleaved")
        ok = verdict("success path", success, ["ours call()"])
        ok = verdict("rejection", rejection, ["ours call(), open"]) and ok
        return 0 if ok else 1

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
