"""FailOpenGuard: cancellation, the budget on every wait path, the breaker's count of faults, and
fallbacks of every kind."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from resilient.breaker import BreakerOptions, BreakerState, CircuitBreaker
from resilient.clock import VirtualClock
from resilient.events import EventBus
from resilient.ratelimit import (
    Decision,
    DecisionSource,
    FailOpenGuard,
    GuardOptions,
    LocalLimiter,
)
from tests.resilient.guard_world import (
    GLOBAL,
    SHARE,
    FakePrimary,
    make_guard,
    state_of,
)


def manual_guard(clock: VirtualClock, primary: FakePrimary) -> FailOpenGuard:
    breaker = CircuitBreaker(
        "g",
        BreakerOptions(failure_threshold=1, reset_timeout=1.0),
        clock=clock,
        events=EventBus(log_when_unobserved=False),
    )
    return FailOpenGuard(
        primary,
        fallback=LocalLimiter(SHARE, clock=clock),
        breaker=breaker,
        clock=clock,
        events=EventBus(log_when_unobserved=False),
    )


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


@pytest.mark.parametrize("warmed_up", [False, True], ids=["first-wait", "native-await"])
async def test_a_cancelled_caller_leaks_no_probe_slot_and_no_task(warmed_up: bool) -> None:
    clock = VirtualClock()  # manual time: the test decides when budgets run out
    primary = FakePrimary(clock)
    guard = manual_guard(clock, primary)
    if warmed_up:  # the guard has seen the primary wait: later decisions are awaited natively
        primary.hang = asyncio.Event()
        primary.hang.set()
        await guard.decide("warm-up")
    primary.error = OSError("down")
    await guard.decide("k")
    clock.advance(1.0)
    primary.error = None
    primary.hang = asyncio.Event()
    caller = asyncio.create_task(guard.decide("k"))
    await settle()
    assert state_of(guard) is BreakerState.HALF_OPEN
    assert not guard.breaker.allows_call()  # the caller holds the only probe slot
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert primary.cancelled == 1
    assert guard.breaker.allows_call()  # slot freed; cancellation is neither success nor failure
    assert state_of(guard) is BreakerState.HALF_OPEN
    await clock.run_for(0.020)  # the watchdog sees the budget finished and ends
    assert asyncio.all_tasks() == {asyncio.current_task()}
    primary.hang = None
    assert (await guard.decide("k")).source is DecisionSource.PRIMARY


@pytest.mark.parametrize("warmed_up", [False, True], ids=["first-wait", "native-await"])
async def test_a_caller_cancelled_as_its_budget_runs_out_stays_cancelled(warmed_up: bool) -> None:
    clock = VirtualClock()
    primary = FakePrimary(clock)
    guard = manual_guard(clock, primary)
    primary.hang = asyncio.Event()
    if warmed_up:
        primary.hang.set()
        await guard.decide("warm-up")
        primary.hang = asyncio.Event()
    caller = asyncio.create_task(guard.decide("k"))
    await settle()
    clock.advance(0.020)  # the budget runs out...
    await asyncio.sleep(0)  # ...the watchdog cancels the caller...
    caller.cancel()  # ...and so does its owner, before the caller runs again
    assert caller.cancelling() == 2
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert guard.stats.fallback == 0


async def test_the_budget_holds_on_both_wait_paths(virtual_clock: VirtualClock) -> None:
    primary = FakePrimary(virtual_clock)
    guard = make_guard(virtual_clock, primary)
    task = asyncio.current_task()
    assert task is not None
    reasons = []
    for delay in (0.005, 1.0, 0.005, 1.0):  # the first wait is finished by hand, later natively
        primary.delay = delay
        started = virtual_clock.monotonic()
        decision = await guard.decide("k")
        assert virtual_clock.monotonic() - started == pytest.approx(min(delay, 0.020))
        assert task.cancelling() == 0
        reasons.append((decision.source.value, decision.reason))
    assert reasons == [
        ("primary", ""),
        ("fallback", "primary timeout"),
        ("primary", ""),
        ("fallback", "primary timeout"),
    ]


async def test_a_timed_out_caller_is_not_left_cancelled(virtual_clock: VirtualClock) -> None:
    primary = FakePrimary(virtual_clock)
    primary.delay = 1.0
    guard = make_guard(virtual_clock, primary)
    await guard.decide("k")
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
    await asyncio.sleep(0)  # would raise if a cancellation were still pending


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": math.inf}, "timeout"),
        ({"instances": 0}, "instances"),
        ({"fault_keys": 0}, "fault_keys"),
        ({"fault_window": -1.0}, "fault_window"),
    ],
)
def test_bad_options_name_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"GuardOptions.{field}"):
        GuardOptions(**options)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"mode": "fallback"}, "mode"),
        ({"unavailable": (OSError, 3)}, "unavailable"),
        ({"timeout": True}, "timeout"),
    ],
)
def test_options_of_the_wrong_type_name_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(TypeError, match=f"GuardOptions.{field}"):
        GuardOptions(**options)


async def test_a_bad_cost_is_the_callers_error_not_a_fault(virtual_clock: VirtualClock) -> None:
    guard = make_guard(virtual_clock, FakePrimary(virtual_clock))
    with pytest.raises(ValueError, match="cost"):
        await guard.decide("k", cost=-1)
    assert guard.stats.errors == 0


async def test_rate_for_is_the_primarys(virtual_clock: VirtualClock) -> None:
    guard = make_guard(virtual_clock, FakePrimary(virtual_clock))
    assert guard.rate_for("k") == GLOBAL


class NeverWaits(FakePrimary):
    """A primary that declares it never waits (as LocalLimiter does): awaited without a budget."""

    never_waits = True


async def test_a_primary_that_never_waits_is_still_guarded(virtual_clock: VirtualClock) -> None:
    primary = NeverWaits(virtual_clock)
    guard = make_guard(virtual_clock, primary)
    assert (await guard.decide("k")).source is DecisionSource.PRIMARY
    primary.error = OSError("down")
    assert (await guard.decide("k")).reason == "primary unavailable: OSError"
    primary.error = None
    primary.answer = Decision(False, 0, -1.0, 0.0)
    assert (await guard.decide("k")).reason == "primary returned a malformed decision"
    local = FailOpenGuard(
        LocalLimiter(GLOBAL, clock=virtual_clock),
        fallback=LocalLimiter(SHARE, clock=virtual_clock),
        clock=virtual_clock,
    )
    assert (await local.decide("k")).source is DecisionSource.PRIMARY


@pytest.mark.parametrize("warmed_up", [False, True], ids=["first-wait", "native-await"])
async def test_many_concurrent_callers_of_a_hanging_primary_all_get_answers_in_budget(
    virtual_clock: VirtualClock, warmed_up: bool
) -> None:
    primary = FakePrimary(virtual_clock)
    guard = make_guard(virtual_clock, primary)
    if warmed_up:
        primary.delay = 0.001
        await guard.decide("warm-up")
        primary.delay = 0.0
    primary.hang = asyncio.Event()  # black-holed: never answers
    started = virtual_clock.monotonic()
    decisions = await asyncio.gather(*(guard.decide(f"user-{i}") for i in range(100)))
    assert virtual_clock.monotonic() - started == pytest.approx(0.020)
    assert all(d.allowed and d.reason == "primary timeout" for d in decisions)
    assert primary.cancelled == 100
    await virtual_clock.run_for(0.1)
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.parametrize("primary_kind", ["never-waits", "may-wait"])
async def test_a_success_after_faults_resets_the_count_and_the_next_faults_trip_after_n(
    virtual_clock: VirtualClock, primary_kind: str
) -> None:
    primary = (NeverWaits if primary_kind == "never-waits" else FakePrimary)(virtual_clock)
    guard = make_guard(virtual_clock, primary)  # trips after 5 faults in a row
    breaker = guard.breaker
    for _ in range(1000):  # healthy: the quiet breaker's shortcut
        await guard.decide("k")
    primary.error = OSError("down")
    for _ in range(4):
        await guard.decide("k")
    assert breaker.failure_count == 4
    primary.error = None
    assert (await guard.decide("k")).source is DecisionSource.PRIMARY
    assert breaker.failure_count == 0  # one success breaks the run, in pybreaker's storage too
    for _ in range(1000):
        await guard.decide("k")
    primary.error = OSError("down")
    for _ in range(4):
        await guard.decide("k")
    assert state_of(guard) is BreakerState.CLOSED
    await guard.decide("k")
    assert state_of(guard) is BreakerState.OPEN
    assert breaker.stats.trips == 1
    assert (breaker.stats.successes, breaker.stats.failures) == (2001, 9)
    assert (guard.stats.primary, guard.stats.fallback) == (2001, 9)


async def test_a_success_that_ends_after_faults_began_still_resets_the_count(
    virtual_clock: VirtualClock,
) -> None:
    primary = FakePrimary(virtual_clock)
    guard = make_guard(virtual_clock, primary)
    primary.delay = 0.010
    slow = asyncio.create_task(guard.decide("slow"))  # permit taken while the breaker is quiet
    await asyncio.sleep(0)
    primary.delay = 0.0
    primary.error = OSError("down")
    for _ in range(4):
        await guard.decide("k")
    assert guard.breaker.failure_count == 4
    primary.error = None
    assert (await slow).source is DecisionSource.PRIMARY
    assert guard.breaker.failure_count == 0


async def test_a_success_from_before_a_trip_and_recovery_counts_for_nothing() -> None:
    clock = VirtualClock()  # manual time: the slow call's 20 ms budget never runs out here
    primary = FakePrimary(clock)
    bus = EventBus(log_when_unobserved=False)
    breaker = CircuitBreaker(
        "g", BreakerOptions(failure_threshold=1, reset_timeout=0.005), clock=clock, events=bus
    )
    guard = FailOpenGuard(
        primary, fallback=LocalLimiter(SHARE, clock=clock), breaker=breaker, clock=clock, events=bus
    )
    release = primary.hang = asyncio.Event()
    slow = asyncio.create_task(guard.decide("slow"))  # permit of the first closed generation
    await settle()
    primary.hang = None
    primary.error = OSError("down")
    await guard.decide("k")
    assert state_of(guard) is BreakerState.OPEN
    clock.advance(0.005)
    primary.error = None
    await guard.decide("k")  # the probe closes the circuit: a new, quiet generation
    assert state_of(guard) is BreakerState.CLOSED
    successes = breaker.stats.successes
    release.set()
    assert (await slow).source is DecisionSource.PRIMARY
    assert breaker.stats.ignored == 1  # it says nothing about the circuit as it is now
    assert breaker.stats.successes == successes
    await guard.aclose()


async def test_the_fallback_may_be_any_limiter(virtual_clock: VirtualClock) -> None:
    primary = FakePrimary(virtual_clock)
    primary.error = OSError("down")
    fallback = FakePrimary(virtual_clock, SHARE)  # waits, so it gets the budget too
    fallback.delay = 0.005
    guard = FailOpenGuard(
        primary,
        fallback=fallback,
        clock=virtual_clock,
        events=EventBus(log_when_unobserved=False),
    )
    decision = await guard.decide("k")
    assert (decision.source, decision.reason) == (
        DecisionSource.FALLBACK,
        "primary unavailable: OSError",
    )
    assert fallback.calls == 1


@pytest.mark.parametrize("failure", ["raises", "hangs", "garbage"])
async def test_a_failing_fallback_allows_and_says_so(
    virtual_clock: VirtualClock, failure: str
) -> None:
    primary = FakePrimary(virtual_clock)
    primary.error = OSError("down")
    fallback = FakePrimary(virtual_clock, SHARE)
    if failure == "raises":
        fallback.error = RuntimeError("fallback bug")
    elif failure == "hangs":
        fallback.hang = asyncio.Event()
    else:
        fallback.answer = "no"
    guard = FailOpenGuard(
        primary,
        fallback=fallback,
        clock=virtual_clock,
        events=EventBus(log_when_unobserved=False),
    )
    started = virtual_clock.monotonic()
    decision = await guard.decide("k")
    assert decision.allowed
    assert decision.source is DecisionSource.PASS_THROUGH
    assert decision.reason == "primary unavailable: OSError; fallback failed"
    assert guard.stats.fallback_failures == 1
    assert virtual_clock.monotonic() - started <= 0.020 + 1e-9
    await guard.aclose()


def test_a_primary_whose_never_waits_is_no_bool_is_refused(virtual_clock: VirtualClock) -> None:
    class Odd(FakePrimary):
        never_waits = "yes"

    with pytest.raises(TypeError, match=r"FailOpenGuard\.primary\.never_waits must be a bool"):
        FailOpenGuard(Odd(virtual_clock), fallback=LocalLimiter(SHARE))
