"""Failover in virtual time: order, failover, breakers, hedging, budget, fallback, deadline,
rate limits and slow start."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from resilient.breaker import BreakerOptions, BreakerState, CircuitBreaker
from resilient.clock import VirtualClock
from resilient.errors import ArgumentTypeError, ArgumentValueError, ProvidersUnavailableError
from resilient.failover import Failover, FailoverOptions, Provider
from resilient.ratelimit import Rate
from tests.resilient.failover_world import Scripted, recorded

DOWN = ConnectionRefusedError("refused")


def pair(
    clock: VirtualClock,
    primary: Any = lambda n: 0.01,
    secondary: Any = lambda n: 0.02,
    **kwargs: Any,
) -> tuple[Failover[str, str], Scripted, Scripted, Any]:
    bus, recorder = recorded()
    one, two = Scripted("one", clock, primary), Scripted("two", clock, secondary)
    options = kwargs.pop("options", FailoverOptions(timeout=1.0))
    failover: Failover[str, str] = Failover(
        [Provider("one", one, rate=kwargs.pop("one_rate", None)),
         Provider("two", two, rate=kwargs.pop("two_rate", None))],
        options, clock=clock, events=bus, **kwargs,
    )  # fmt: skip
    return failover, one, two, recorder


async def test_a_healthy_primary_answers_alone() -> None:
    clock = VirtualClock(autojump=True)
    failover, _, two, _ = pair(clock)
    for i in range(20):
        result = await failover.call(f"r{i}")
        assert (result.value, result.provider, result.degraded) == (f"one:r{i}", "one", False)
        assert (result.attempts, result.hedged) == (1, False)
    assert two.calls == 0


async def test_a_failed_attempt_moves_to_the_next_provider() -> None:
    clock = VirtualClock(autojump=True)
    failover, _, _, recorder = pair(clock, primary=lambda n: DOWN)
    result = await failover.call("r")
    assert (result.value, result.provider, result.attempts) == ("two:r", "two", 2)
    [event] = [e for e in recorder.events if e.name == "failed_over"]
    assert dict(event.attributes) == {
        "failover": "failover",
        "failed": "one",
        "to": "two",
        "error": "ConnectionRefusedError: refused",
    }
    assert failover.stats()["one"].failures == 1


async def test_an_open_breaker_passes_its_provider_over_at_once() -> None:
    clock = VirtualClock(autojump=True)
    failover, one, _, _ = pair(clock, primary=lambda n: DOWN)
    for _ in range(20):
        assert (await failover.call("r")).provider == "two"
    assert one.calls == 5  # the provider breaker's threshold, then no more
    assert failover.lanes[0].breaker.state is BreakerState.OPEN


async def test_a_slow_attempt_is_hedged_once_after_the_providers_p95() -> None:
    clock = VirtualClock(autojump=True)
    three = Scripted("three", clock)
    slow = {30}
    one = Scripted("one", clock, lambda n: 0.5 if n in slow else 0.010)
    two = Scripted("two", clock, lambda n: 0.02)
    bus, recorder = recorded()
    failover: Failover[str, str] = Failover(
        [Provider("one", one), Provider("two", two), Provider("three", three)],
        FailoverOptions(timeout=2.0), clock=clock, events=bus,
    )  # fmt: skip
    for i in range(29):
        assert (await failover.call(f"r{i}")).hedged is False
    started = clock.monotonic()
    result = await failover.call("slow")
    assert (result.provider, result.hedged, result.attempts) == ("two", True, 2)
    [event] = [e for e in recorder.events if e.name == "hedged"]
    assert event.attributes["delay"] == pytest.approx(0.010)  # one's p95: 10 ms
    assert clock.monotonic() - started == pytest.approx(0.010 + 0.02)
    assert one.cancelled == 1  # the loser is cancelled
    assert three.calls == 0  # at most one hedge
    stats = failover.stats()
    assert (stats["two"].hedges, stats["two"].hedges_won, stats["one"].cancelled) == (1, 1, 1)
    assert failover.lanes[0].breaker.stats.failures == 0  # a cancelled loser is nobody's fault


class Budget:
    def __init__(self, allow: bool) -> None:
        self.allow = allow
        self.requests = 0
        self.spent = 0

    def record_request(self) -> None:
        self.requests += 1

    def try_spend(self) -> bool:
        if self.allow:
            self.spent += 1
        return self.allow


async def test_a_refused_budget_ends_the_request() -> None:
    clock = VirtualClock(autojump=True)
    budget = Budget(allow=False)
    failover, _, two, _ = pair(clock, primary=lambda n: DOWN, budget=budget)
    with pytest.raises(ProvidersUnavailableError) as caught:
        await failover.call("r")
    assert caught.value.reason == "the retry budget is spent"
    assert caught.value.errors == (("one", "ConnectionRefusedError: refused"),)
    assert two.calls == 0
    assert budget.requests == 1
    assert failover.lanes[1].breaker.allows_call()  # its permit was given back


async def test_every_extra_attempt_is_paid_from_the_budget() -> None:
    clock = VirtualClock(autojump=True)
    budget = Budget(allow=True)
    failover, _, _, _ = pair(clock, primary=lambda n: DOWN, budget=budget)
    for _ in range(3):
        await failover.call("r")
    assert (budget.requests, budget.spent) == (3, 3)


async def test_the_fallback_answers_degraded_when_nobody_can() -> None:
    clock = VirtualClock(autojump=True)
    seen: list[ProvidersUnavailableError] = []

    async def fallback(request: str, error: ProvidersUnavailableError) -> str:
        seen.append(error)
        return "cached answer"

    failover, _, _, recorder = pair(
        clock, primary=lambda n: DOWN, secondary=lambda n: DOWN, fallback=fallback
    )
    result = await failover.call("r")
    assert (result.value, result.provider, result.degraded, result.attempts) == (
        "cached answer",
        None,
        True,
        2,
    )
    assert seen[0].errors == (
        ("one", "ConnectionRefusedError: refused"),
        ("two", "ConnectionRefusedError: refused"),
    )
    assert [e.attributes["reason"] for e in recorder.events if e.name == "fallback"] == [
        "every provider failed or is unavailable"
    ]


async def test_a_request_ends_at_its_deadline_and_leaves_nothing_running() -> None:
    clock = VirtualClock(autojump=True)
    failover, one, two, _ = pair(clock, primary=lambda n: 100.0, secondary=lambda n: 100.0)
    started = clock.monotonic()
    with pytest.raises(ProvidersUnavailableError, match="the deadline passed"):
        await failover.call("r", timeout=0.5)
    assert clock.monotonic() - started == pytest.approx(0.5)
    assert (one.in_flight, two.in_flight) == (0, 0)
    assert (one.cancelled, two.cancelled) == (1, 1)  # the first attempt and its hedge


async def test_a_providers_rate_limit_is_never_exceeded() -> None:
    clock = VirtualClock(autojump=True)

    async def fallback(request: str, error: ProvidersUnavailableError) -> str:
        return "degraded"

    failover, _, two, _ = pair(
        clock,
        primary=lambda n: DOWN,
        two_rate=Rate(10, 1.0, burst=2),
        fallback=fallback,
        options=FailoverOptions(timeout=1.0, hedge=False),
    )

    async def one_request(i: int) -> str:
        return (await failover.call(f"r{i}")).value

    for _ in range(3):
        answers = await asyncio.gather(*(one_request(i) for i in range(100)))
        assert answers.count("degraded") >= 100 - 13
        await clock.sleep(1.0)
    starts = two.times
    assert max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts) <= 10 + 2 + 1
    assert failover.stats()["two"].rate_limited > 0


async def test_a_provider_that_comes_back_takes_its_share_slowly() -> None:
    clock = VirtualClock(autojump=True)
    down = {"on": True}
    options = FailoverOptions(timeout=1.0, hedge=False, slow_start_window=10.0)
    breaker_options = BreakerOptions(failure_threshold=2, reset_timeout=1.0)
    bus, recorder = recorded()
    one = Scripted("one", clock, lambda n: DOWN if down["on"] else 0.001)
    two = Scripted("two", clock, lambda n: 0.001)
    failover: Failover[str, str] = Failover(
        [
            Provider("one", one, breaker=CircuitBreaker("one", breaker_options, clock=clock)),
            Provider("two", two),
        ],
        options,
        clock=clock,
        events=bus,
        random=__import__("random").Random(7),
    )
    for _ in range(5):
        await failover.call("r")
    down["on"] = False
    await clock.sleep(1.0)  # the breaker lets a probe through; it succeeds and closes
    shares = []
    for _ in range(12):
        before = one.calls
        for _ in range(100):
            await failover.call("r")
            await clock.sleep(0.01)
        shares.append((one.calls - before) / 100)
    assert shares[0] < 0.3
    assert shares[4] == pytest.approx(0.1 + 0.9 * 0.45, abs=0.15)
    assert shares[-1] == 1.0
    assert [e.name for e in recorder.events].count("recovering") == 1


async def test_a_callers_error_is_raised_as_it_is_and_counts_against_nobody() -> None:
    clock = VirtualClock(autojump=True)
    failover, _, two, _ = pair(clock, primary=lambda n: ValueError("bad request"))
    with pytest.raises(ValueError, match="bad request"):
        await failover.call("r")
    assert two.calls == 0
    assert failover.lanes[0].breaker.stats.failures == 0
    assert failover.stats()["one"].failures == 0


async def test_a_cancelled_request_cancels_its_attempts_and_frees_their_permits() -> None:
    clock = VirtualClock(autojump=True)
    probe_options = BreakerOptions(failure_threshold=1, reset_timeout=1.0, half_open_max_calls=1)
    breaker = CircuitBreaker("one", probe_options, clock=clock)
    one = Scripted("one", clock, lambda n: DOWN if n == 1 else 100.0)
    two = Scripted("two", clock, lambda n: 100.0)
    failover: Failover[str, str] = Failover(
        [Provider("one", one, breaker=breaker), Provider("two", two)],
        FailoverOptions(timeout=50.0),
        clock=clock,
    )
    with pytest.raises(ProvidersUnavailableError):
        await failover.call("r", timeout=0.001)  # one fails: its breaker opens
    await clock.sleep(1.0)
    task = asyncio.ensure_future(failover.call("r"))
    await clock.sleep(13.0)  # one's probe is out, never hedged
    assert (one.in_flight, two.in_flight) == (1, 0)
    assert not breaker.allows_call()  # its one probe slot is taken
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (one.in_flight, two.in_flight) == (0, 0)
    assert breaker.allows_call()  # the probe slot is free again


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda p: Failover([]), ArgumentTypeError, "non-empty sequence of Provider"),
        (lambda p: Failover("ab"), ArgumentTypeError, "non-empty sequence"),  # type: ignore[arg-type]
        (lambda p: Failover([p, p]), ArgumentValueError, "distinct names"),
        (lambda p: Failover([object()]), ArgumentTypeError, "Failover.providers[] must be"),  # type: ignore[list-item]
        (lambda p: Failover([p], budget=object()), ArgumentTypeError, "Failover.budget"),  # type: ignore[arg-type]
        (lambda p: Failover([p], fallback=3), ArgumentTypeError, "Failover.fallback"),  # type: ignore[arg-type]
        (lambda p: Provider("", p.call), ArgumentValueError, "Provider.name"),
        (lambda p: Provider("x", 3), ArgumentTypeError, "Provider.call"),  # type: ignore[arg-type]
        (
            lambda p: FailoverOptions(timeout=math.nan),
            ArgumentValueError,
            "FailoverOptions.timeout",
        ),
        (lambda p: FailoverOptions(hedge=1), ArgumentTypeError, "FailoverOptions.hedge"),  # type: ignore[arg-type]
        (lambda p: FailoverOptions(hedge_quantile=0), ArgumentValueError, "hedge_quantile"),
    ],
)
def test_bad_arguments_are_refused_by_name(make: Any, error: type[Exception], words: str) -> None:
    clock = VirtualClock()
    provider = Provider("one", Scripted("one", clock))
    with pytest.raises(error) as caught:
        make(provider)
    assert words in str(caught.value)


@pytest.mark.parametrize("timeout", [math.nan, 0, -1, True, "1", math.inf])
async def test_a_bad_timeout_is_refused_before_anything_counts(timeout: Any) -> None:
    clock = VirtualClock(autojump=True)
    budget = Budget(allow=True)
    failover, one, _, _ = pair(clock, budget=budget)
    with pytest.raises((ArgumentTypeError, ArgumentValueError), match=r"Failover.call\(timeout\)"):
        await failover.call("r", timeout=timeout)
    assert (one.calls, budget.requests) == (0, 0)
