"""FailOpenGuard: a primary that cannot answer never becomes a denial; the fallback still limits."""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient.breaker import BreakerOptions, BreakerState, CircuitBreaker
from resilient.clock import VirtualClock
from resilient.errors import ArgumentError, ArgumentValueError
from resilient.events import EventBus, EventRecorder
from resilient.ratelimit import (
    Decision,
    DecisionSource,
    FailOpenGuard,
    GuardMode,
    GuardOptions,
    LimiterUnavailable,
    LocalLimiter,
    Rate,
)

GLOBAL = Rate(100, 1.0, burst=3)
SHARE = GLOBAL.per_share(4)  # 25/s, no burst


class RedisErrors:
    """Errors named like redis-py's: its ConnectionError is no OSError (name it in
    ``GuardOptions.unavailable`` to have it reported as unavailability)."""

    class ConnectionError(Exception):
        pass


_UNSET: Any = object()


def state_of(guard: FailOpenGuard) -> BreakerState:
    """The guard's breaker state, read fresh (a call, so type checkers do not narrow it)."""
    return guard.breaker.state


class FakePrimary:
    """A primary limiter whose behaviour the test switches: healthy, slow, raising, garbage."""

    def __init__(self, clock: VirtualClock, rate: Rate = GLOBAL) -> None:
        self.clock = clock
        self.healthy = LocalLimiter(rate, clock=clock)
        self.calls = 0
        self.delay = 0.0
        self.error: BaseException | None = None
        self.answer: Any = _UNSET
        self.hang: asyncio.Event | None = None
        self.cancelled = 0

    def rate_for(self, key: str) -> Rate:
        return self.healthy.rate_for(key)

    async def decide(self, key: str, *, cost: int = 1, rate: Rate | None = None) -> Decision:
        self.calls += 1
        try:
            if self.hang is not None:
                await self.hang.wait()
            if self.delay:
                await self.clock.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.error is not None:
            raise self.error
        if self.answer is not _UNSET:
            answer: Decision = self.answer
            return answer
        return self.healthy.decide_now(key, cost=cost, rate=rate)


def make_guard(
    clock: VirtualClock,
    primary: FakePrimary,
    bus: EventBus | None = None,
    **options: Any,
) -> FailOpenGuard:
    events = bus or EventBus(log_when_unobserved=False)
    mode = options.get("mode", GuardMode.FALLBACK)
    return FailOpenGuard(
        primary,
        GuardOptions(**options),
        fallback=LocalLimiter(SHARE, clock=clock) if mode is GuardMode.FALLBACK else None,
        clock=clock,
        events=events,
    )


@pytest.fixture
def recorder_bus() -> tuple[EventRecorder, EventBus]:
    recorder = EventRecorder()
    bus = EventBus()
    bus.subscribe(recorder)
    return recorder, bus


async def test_a_healthy_primary_answers_and_nothing_degrades(virtual_clock: VirtualClock) -> None:
    primary = FakePrimary(virtual_clock)
    guard = make_guard(virtual_clock, primary)
    decision = await guard.decide("k")
    assert decision.allowed
    assert decision.source is DecisionSource.PRIMARY
    primary.delay = 0.010  # waits, but within the 20 ms budget
    assert (await guard.decide("k")).source is DecisionSource.PRIMARY
    assert guard.stats.primary == 2
    assert not guard.degraded


async def test_a_slow_primary_is_cut_off_at_the_budget(virtual_clock: VirtualClock) -> None:
    primary = FakePrimary(virtual_clock)
    primary.delay = 2.0
    guard = make_guard(virtual_clock, primary, timeout=0.020)
    decision = await guard.decide("k")
    assert virtual_clock.monotonic() == pytest.approx(0.020)
    assert decision.allowed
    assert decision.source is DecisionSource.FALLBACK
    assert decision.reason == "primary timeout"
    assert primary.cancelled == 1
    assert guard.stats.timeouts == 1


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (OSError("connection refused"), "primary unavailable: OSError"),
        (ConnectionResetError(), "primary unavailable: ConnectionResetError"),
        (LimiterUnavailable("down"), "primary unavailable: LimiterUnavailable"),
        (RedisErrors.ConnectionError("redis-py style"), "primary error: ConnectionError"),
        (ValueError("garbage reply"), "primary error: ValueError"),
        (KeyError("x"), "primary error: KeyError"),
    ],
)
async def test_a_raising_primary_gets_a_fallback_decision_with_the_reason(
    virtual_clock: VirtualClock, fault: Exception, reason: str
) -> None:
    primary = FakePrimary(virtual_clock)
    primary.error = fault
    guard = make_guard(virtual_clock, primary)
    decision = await guard.decide("k")
    assert decision.allowed
    assert decision.source is DecisionSource.FALLBACK
    assert decision.reason == reason


async def test_a_clients_own_connection_error_is_named_unavailable_when_listed(
    virtual_clock: VirtualClock,
) -> None:
    primary = FakePrimary(virtual_clock)
    primary.error = RedisErrors.ConnectionError("redis-py style")
    guard = make_guard(
        virtual_clock,
        primary,
        unavailable=(OSError, LimiterUnavailable, RedisErrors.ConnectionError),
    )
    decision = await guard.decide("k")
    assert (decision.source, decision.reason) == (
        DecisionSource.FALLBACK,
        "primary unavailable: ConnectionError",
    )
    assert guard.stats.unavailable == 1


@pytest.mark.parametrize(
    "garbage",
    [
        "OK",
        None,
        (False, 0, 1.0, 1.0),
        Decision(False, -1, 1.0, 1.0),
        Decision(False, 0, 0.0, 1.0),
        Decision(False, 0, math.nan, 1.0),
        Decision(False, 0, -math.inf, 1.0),
        Decision(False, 0, 1.0, math.inf),
        Decision(0, 0, 1.0, 1.0),  # type: ignore[arg-type]
    ],
)
async def test_a_malformed_answer_is_never_taken_as_a_denial(
    virtual_clock: VirtualClock, garbage: Any
) -> None:
    primary = FakePrimary(virtual_clock)
    primary.answer = garbage
    guard = make_guard(virtual_clock, primary)
    decision = await guard.decide("k")
    assert decision.allowed
    assert decision.source is DecisionSource.FALLBACK
    assert decision.reason == "primary returned a malformed decision"
    assert guard.stats.malformed == 1


@pytest.mark.parametrize("fault", ["slow", "raise", "garbage", "hang"])
async def test_no_request_is_denied_because_of_a_fault(
    virtual_clock: VirtualClock, fault: str
) -> None:
    primary = FakePrimary(virtual_clock)
    if fault == "slow":
        primary.delay = 0.5
    elif fault == "raise":
        primary.error = OSError("reset by peer")
    elif fault == "garbage":
        primary.answer = Decision(False, 0, -1.0, 0.0)
    else:
        primary.hang = asyncio.Event()
    guard = make_guard(virtual_clock, primary)
    decisions = [await guard.decide(f"user-{i}") for i in range(200)]
    assert all(d.allowed for d in decisions)
    assert {d.source for d in decisions} == {DecisionSource.FALLBACK}


async def test_the_fallback_still_limits_an_abusive_key_to_its_share(
    virtual_clock: VirtualClock,
) -> None:
    primary = FakePrimary(virtual_clock)
    primary.error = OSError("down")
    guard = make_guard(virtual_clock, primary)
    allowed_at: list[float] = []
    for _ in range(2000):  # 1000 requests/s for 2 s, 40x the share
        if (await guard.decide("abuser")).allowed:
            allowed_at.append(virtual_clock.monotonic())
        virtual_clock.advance(0.001)
    assert 45 <= len(allowed_at) <= 2 * (SHARE.limit + SHARE.burst)
    for start in allowed_at:
        in_window = [t for t in allowed_at if start <= t < start + SHARE.period]
        assert len(in_window) <= SHARE.limit + SHARE.burst
    denied = await guard.decide("abuser")
    assert not denied.allowed
    assert denied.source is DecisionSource.FALLBACK
    assert denied.retry_after > 0


async def test_a_rate_given_per_call_is_divided_among_instances_for_the_fallback(
    virtual_clock: VirtualClock,
) -> None:
    primary = FakePrimary(virtual_clock)
    primary.error = OSError("down")
    guard = make_guard(virtual_clock, primary, instances=4)
    wide = Rate(8, 1.0, burst=7)  # 8 at once globally: 2 at once for this instance
    results = [(await guard.decide("k", rate=wide)).allowed for _ in range(3)]
    assert results == [True, True, False]


async def test_an_open_breaker_keeps_the_primary_out_of_the_path(
    virtual_clock: VirtualClock,
) -> None:
    primary = FakePrimary(virtual_clock)
    primary.delay = 1.0
    guard = make_guard(virtual_clock, primary)
    for _ in range(5):
        await guard.decide("k")
    assert state_of(guard) is BreakerState.OPEN
    calls = primary.calls
    started = virtual_clock.monotonic()
    decision = await guard.decide("k2")
    assert primary.calls == calls
    assert virtual_clock.monotonic() == started  # no added latency
    assert decision.reason == "breaker open"
    assert guard.stats.breaker_open == 1


async def test_half_open_probes_find_the_recovery(
    virtual_clock: VirtualClock, recorder_bus: tuple[EventRecorder, EventBus]
) -> None:
    recorder, bus = recorder_bus
    primary = FakePrimary(virtual_clock)
    primary.error = OSError("down")
    guard = make_guard(virtual_clock, primary, bus)
    for _ in range(5):
        await guard.decide("k")
    assert state_of(guard) is BreakerState.OPEN
    assert guard.degraded
    primary.error = None  # the dependency comes back
    virtual_clock.advance(4.9)
    assert (await guard.decide("k")).reason == "breaker open"
    virtual_clock.advance(0.1)
    decision = await guard.decide("k")
    assert decision.source is DecisionSource.PRIMARY
    assert state_of(guard) is BreakerState.CLOSED
    assert not guard.degraded
    names = [(e.source, e.name) for e in recorder.events]
    assert names == [
        ("ratelimit.guard", "degraded"),
        ("breaker", "opened"),
        ("breaker", "half_opened"),
        ("breaker", "closed"),
        ("ratelimit.guard", "recovered"),
    ]
    assert recorder.events[0].attributes["reason"] == "primary unavailable: OSError"
    assert recorder.events[-1].attributes["degraded_for"] == pytest.approx(5.0)


async def test_counters_say_who_answered(virtual_clock: VirtualClock) -> None:
    primary = FakePrimary(virtual_clock)
    guard = make_guard(virtual_clock, primary)
    await guard.decide("a")
    primary.error = OSError("down")
    await guard.decide("b")
    primary.error = None
    primary.delay = 1.0
    await guard.decide("c")
    stats = guard.stats
    assert (stats.primary, stats.fallback, stats.pass_through) == (1, 2, 0)
    assert (stats.unavailable, stats.timeouts) == (1, 1)


async def test_pass_through_mode_allows_outright(virtual_clock: VirtualClock) -> None:
    primary = FakePrimary(virtual_clock)
    primary.error = OSError("down")
    guard = make_guard(virtual_clock, primary, mode=GuardMode.PASS_THROUGH)
    decisions = [await guard.decide("abuser") for _ in range(100)]
    assert all(d.allowed and d.source is DecisionSource.PASS_THROUGH for d in decisions)
    assert decisions[0].reason == "primary unavailable: OSError"
    assert guard.stats.pass_through == 100


async def test_fail_closed_is_an_opt_in_that_raises_and_never_denies(
    virtual_clock: VirtualClock,
) -> None:
    primary = FakePrimary(virtual_clock)
    primary.error = OSError("down")
    guard = make_guard(virtual_clock, primary, mode=GuardMode.FAIL_CLOSED)
    with pytest.raises(LimiterUnavailable, match="primary unavailable: OSError") as raised:
        await guard.decide("k")
    assert isinstance(raised.value.__cause__, OSError)
    assert guard.stats.fail_closed == 1
    assert GuardOptions().mode is GuardMode.FALLBACK


async def test_the_fallback_is_required_in_fallback_mode() -> None:
    with pytest.raises(ValueError, match=r"FailOpenGuard\.fallback is required"):
        FailOpenGuard(FakePrimary(VirtualClock()))


async def test_many_distinct_keys_denied_at_once_is_reported_as_a_suspected_fault(
    virtual_clock: VirtualClock, recorder_bus: tuple[EventRecorder, EventBus]
) -> None:
    recorder, bus = recorder_bus
    primary = FakePrimary(virtual_clock)
    primary.answer = Decision(False, 0, 1.0, 1.0)  # a broken limiter: everyone is "limited"
    guard = make_guard(virtual_clock, primary, bus, fault_keys=50, fault_window=1.0)
    decisions = [await guard.decide(f"user-{i}") for i in range(120)]
    # The event changes no decision: the primary's denials stand.
    assert all(not d.allowed and d.source is DecisionSource.PRIMARY for d in decisions)
    faults = recorder.named("suspected_limiter_fault")
    assert len(faults) == 1
    assert faults[0].attributes["distinct_keys_denied"] == 50
    virtual_clock.advance(1.0)
    for i in range(50):
        await guard.decide(f"user-{i}")
    assert len(recorder.named("suspected_limiter_fault")) == 2


async def test_one_key_denied_many_times_is_not_a_suspected_fault(
    virtual_clock: VirtualClock, recorder_bus: tuple[EventRecorder, EventBus]
) -> None:
    recorder, bus = recorder_bus
    primary = FakePrimary(virtual_clock)
    guard = make_guard(virtual_clock, primary, bus, fault_keys=5)
    for _ in range(500):
        await guard.decide("abuser")
    assert guard.stats.primary == 500
    assert recorder.named("suspected_limiter_fault") == []


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


# -- issue 8: nothing a caller passes changes the guard's state for other callers -------------


async def test_a_request_no_wait_can_allow_is_the_primarys_answer_not_a_fault(
    virtual_clock: VirtualClock,
) -> None:
    guard = FailOpenGuard(
        LocalLimiter(GLOBAL, clock=virtual_clock),
        fallback=LocalLimiter(SHARE, clock=virtual_clock),
        clock=virtual_clock,
        events=EventBus(log_when_unobserved=False),
    )
    decision = await guard.decide("k", cost=2**60)
    assert (decision.allowed, decision.retry_after, decision.source) == (
        False,
        math.inf,
        DecisionSource.PRIMARY,
    )
    assert (
        decision.reason
        == "cost 1152921504606846976 exceeds the largest request this rate ever allows (4)"
    )
    assert guard.breaker.failure_count == 0
    assert guard.stats.malformed == guard.stats.errors == 0


class SyncRaising:
    """A primary whose decide is a plain function that raises before returning an awaitable."""

    never_waits = False

    def __init__(self) -> None:
        self.calls = 0

    def decide(self, key: str, *, cost: int = 1, rate: Rate | None = None) -> Decision:
        self.calls += 1
        raise ConnectionError("raised synchronously")


async def test_a_primary_raising_synchronously_frees_the_half_open_probe_slot(
    virtual_clock: VirtualClock,
) -> None:
    primary = SyncRaising()
    breaker = CircuitBreaker(
        "g",
        BreakerOptions(failure_threshold=1, reset_timeout=1.0),
        clock=virtual_clock,
        events=EventBus(log_when_unobserved=False),
    )
    guard = FailOpenGuard(
        primary,  # type: ignore[arg-type]
        fallback=LocalLimiter(SHARE, clock=virtual_clock),
        breaker=breaker,
        clock=virtual_clock,
        events=EventBus(log_when_unobserved=False),
    )
    assert (await guard.decide("k")).source is DecisionSource.FALLBACK
    assert state_of(guard) is BreakerState.OPEN
    for _ in range(3):
        virtual_clock.advance(1.0)  # half-open: the next decision is the probe
        decision = await guard.decide("k")
        assert decision.reason == "primary unavailable: ConnectionError"
        assert state_of(guard) is BreakerState.OPEN  # the probe failed and gave its slot back
    assert primary.calls == 4  # the primary was asked at every probe, not locked out


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
async def test_an_interrupt_inside_the_primary_frees_the_probe_slot(
    virtual_clock: VirtualClock, interrupt: type[BaseException]
) -> None:
    primary = FakePrimary(virtual_clock)
    breaker = CircuitBreaker(
        "g",
        BreakerOptions(failure_threshold=1, reset_timeout=1.0),
        clock=virtual_clock,
        events=EventBus(log_when_unobserved=False),
    )
    guard = FailOpenGuard(
        primary,
        fallback=LocalLimiter(SHARE, clock=virtual_clock),
        breaker=breaker,
        clock=virtual_clock,
        events=EventBus(log_when_unobserved=False),
    )
    primary.error = OSError("down")
    await guard.decide("k")
    virtual_clock.advance(1.0)
    primary.error = interrupt()
    with pytest.raises(interrupt):
        await guard.decide("k")
    primary.error = None
    assert (await guard.decide("k")).source is DecisionSource.PRIMARY  # the slot was free
    assert state_of(guard) is BreakerState.CLOSED


class ArgumentRefusing(FakePrimary):
    """A primary that refuses some argument a caller passed (the caller's mistake)."""

    async def decide(self, key: str, *, cost: int = 1, rate: Rate | None = None) -> Decision:
        if key == "bad":
            raise ArgumentValueError("ArgumentRefusing.decide(key) must not be 'bad', got 'bad'")
        return await super().decide(key, cost=cost, rate=rate)


async def test_a_callers_argument_error_from_the_primary_is_raised_not_counted(
    virtual_clock: VirtualClock,
) -> None:
    guard = make_guard(virtual_clock, ArgumentRefusing(virtual_clock))
    for _ in range(20):
        with pytest.raises(ArgumentValueError):
            await guard.decide("bad")
    assert state_of(guard) is BreakerState.CLOSED
    assert guard.breaker.failure_count == 0
    assert (await guard.decide("good")).source is DecisionSource.PRIMARY


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"key": 5}, TypeError),
        ({"key": b"bytes"}, TypeError),
        ({"key": None}, TypeError),
        ({"key": "k", "cost": -1}, ValueError),
        ({"key": "k", "cost": 1.5}, TypeError),
        ({"key": "k", "cost": True}, TypeError),
        ({"key": "k", "rate": "10/s"}, TypeError),
    ],
)
async def test_bad_input_is_refused_before_the_breaker_sees_it(
    virtual_clock: VirtualClock, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    primary = FakePrimary(virtual_clock)
    guard = make_guard(virtual_clock, primary)
    for _ in range(10):
        with pytest.raises(error, match=r"^FailOpenGuard\.decide\("):
            await guard.decide(**kwargs)
    assert primary.calls == 0
    assert guard.breaker.failure_count == 0
    assert guard.breaker.stats == type(guard.breaker.stats)()


@settings(max_examples=150, deadline=None)
@given(
    calls=st.lists(
        st.tuples(
            st.one_of(
                st.text(max_size=40),
                st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)),
                st.integers(),
                st.none(),
                st.binary(max_size=4),
            ),
            st.one_of(
                st.integers(min_value=-(2**70), max_value=2**70),
                st.booleans(),
                st.floats(allow_nan=True),
                st.text(max_size=3),
            ),
            st.one_of(
                st.none(),
                st.builds(
                    Rate,
                    st.integers(1, 10**6),
                    st.floats(0.001, 10**6),
                    st.integers(0, 1000),
                ),
                st.text(max_size=4),
                st.integers(),
            ),
        ),
        max_size=25,
    )
)
async def test_no_input_changes_the_guard_for_other_callers(
    calls: list[tuple[Any, Any, Any]],
) -> None:
    """Whatever a hostile caller passes, the breaker stays closed and untouched, and another
    key's decisions are exactly what they would have been without that caller."""
    clock = VirtualClock()
    primary = FakePrimary(clock)
    guard = make_guard(clock, primary)
    witness = LocalLimiter(GLOBAL, clock=clock)
    for key, cost, rate in calls:
        with contextlib.suppress(ArgumentError):
            decision = await guard.decide(key, cost=cost, rate=rate)
            assert decision.source is DecisionSource.PRIMARY
        clock.advance(0.001)
        assert await guard.decide("bystander") == witness.decide_now("bystander")
    assert state_of(guard) is BreakerState.CLOSED
    assert guard.breaker.failure_count == 0
    assert guard.breaker.stats.failures == 0
    assert guard.stats.errors == guard.stats.malformed == guard.stats.timeouts == 0


# -- counters, refusals and budgets, exactly (mutation survivors) ------------------------------


def test_the_stats_start_at_zero_as_a_slotted_value() -> None:
    import dataclasses

    from resilient.ratelimit import GuardStats

    stats = GuardStats()
    assert set(dataclasses.asdict(stats).values()) == {0}
    assert not hasattr(stats, "__dict__")


def test_a_guard_may_wait_so_a_guard_over_it_gives_it_a_budget() -> None:
    assert FailOpenGuard.never_waits is False


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda clock: FailOpenGuard(LocalLimiter(GLOBAL, clock=clock), 3),
            "FailOpenGuard.options must be a GuardOptions, got 3",
        ),
        (
            lambda clock: FailOpenGuard(LocalLimiter(GLOBAL, clock=clock)),
            "FailOpenGuard.fallback is required in mode FALLBACK: give it "
            "LocalLimiter(rate.per_share(instances)), or choose another GuardOptions.mode",
        ),
        (
            lambda clock: FailOpenGuard(LocalLimiter(GLOBAL, clock=clock), fallback=3),
            "FailOpenGuard.fallback must be a Limiter (with a decide method), got 3",
        ),
    ],
)
def test_the_constructor_refuses_in_exact_words(build: Any, message: str) -> None:
    with pytest.raises((TypeError, ValueError)) as raised:
        build(VirtualClock())
    assert str(raised.value) == message


async def test_each_decision_the_open_breaker_takes_is_counted(
    virtual_clock: VirtualClock,
) -> None:
    primary = FakePrimary(virtual_clock)
    primary.error = OSError("down")
    guard = make_guard(virtual_clock, primary)
    for _ in range(5):
        await guard.decide("k")
    assert state_of(guard) is BreakerState.OPEN
    await guard.decide("k")
    await guard.decide("k")
    assert guard.stats.breaker_open == 2
    await guard.aclose()


async def test_each_malformed_answer_is_counted_and_named(virtual_clock: VirtualClock) -> None:
    primary = FakePrimary(virtual_clock)
    primary.answer = "yes"
    guard = make_guard(virtual_clock, primary)
    first = await guard.decide("k")
    await guard.decide("k")
    assert guard.stats.malformed == 2
    assert first.reason == "primary returned a malformed decision"
    assert guard.breaker.stats.failures == 2
    await guard.aclose()


class WaitingFallback:
    """A fallback that may wait (it takes ``delay`` seconds of the clock to answer)."""

    never_waits = False

    def __init__(self, clock: VirtualClock, delay: float) -> None:
        self.inner = LocalLimiter(SHARE, clock=clock)
        self.clock = clock
        self.delay = delay

    async def decide(self, key: str, *, cost: int = 1, rate: Rate | None = None) -> Decision:
        await self.clock.sleep(self.delay)
        return await self.inner.decide(key, cost=cost, rate=rate)


async def test_a_waiting_fallback_gets_only_what_is_left_of_the_budget(
    virtual_clock: VirtualClock,
) -> None:
    primary = FakePrimary(virtual_clock)
    primary.hang = asyncio.Event()  # silent for ever: the whole 20 ms budget goes on it
    guard = FailOpenGuard(
        primary,
        GuardOptions(timeout=0.020),
        fallback=WaitingFallback(virtual_clock, delay=0.015),
        clock=virtual_clock,
        events=EventBus(log_when_unobserved=False),
    )
    decision = await guard.decide("k")
    assert virtual_clock.monotonic() == pytest.approx(0.020)  # one budget, not two
    assert decision.source is DecisionSource.PASS_THROUGH
    assert decision.reason == "primary timeout; fallback failed"
    await guard.aclose()


async def test_a_waiting_fallback_behind_a_never_waiting_primary_gets_a_whole_budget(
    virtual_clock: VirtualClock,
) -> None:
    class Failing:
        never_waits = True

        async def decide(self, key: str, *, cost: int = 1, rate: Rate | None = None) -> Decision:
            raise OSError("down")

    guard = FailOpenGuard(
        Failing(),
        GuardOptions(timeout=0.020),
        fallback=WaitingFallback(virtual_clock, delay=0.015),
        clock=virtual_clock,
        events=EventBus(log_when_unobserved=False),
    )
    decision = await guard.decide("k")
    assert decision.source is DecisionSource.FALLBACK
    assert decision.reason == "primary unavailable: OSError"
    assert virtual_clock.monotonic() == pytest.approx(0.015)
    await guard.aclose()


async def test_the_budget_is_watched_by_a_task_named_for_the_guard(
    virtual_clock: VirtualClock,
) -> None:
    primary = FakePrimary(virtual_clock)
    primary.hang = asyncio.Event()
    guard = make_guard(virtual_clock, primary)
    waiting = asyncio.ensure_future(guard.decide("k"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert "FailOpenGuard.watchdog" in {task.get_name() for task in asyncio.all_tasks()}
    primary.hang.set()
    await waiting
    await guard.aclose()


async def test_the_breaker_is_told_what_the_malformed_answer_was(
    virtual_clock: VirtualClock,
) -> None:
    seen: list[str] = []

    def note(error: BaseException) -> bool:
        seen.append(str(error))
        return False

    primary = FakePrimary(virtual_clock)
    primary.answer = "yes"
    events = EventBus(log_when_unobserved=False)
    guard = FailOpenGuard(
        primary,
        fallback=LocalLimiter(SHARE, clock=virtual_clock),
        breaker=CircuitBreaker(
            "b", BreakerOptions(exclude=(note,)), clock=virtual_clock, events=events
        ),
        clock=virtual_clock,
        events=events,
    )
    await guard.decide("k")
    assert seen == ["primary returned 'yes'"]
    await guard.aclose()


# -- whose fault a spent budget is: the store's silence, counted up to the deadline -----------


class SilentStore:
    """A primary that hangs until cancelled, then notes how long its store had been silent
    (as RedisLimiter does), after ``late`` seconds of a busy loop that delayed the
    cancellation past the deadline."""

    never_waits = False

    def __init__(self, clock: VirtualClock, silent_for: float, late: float = 0.0) -> None:
        self.clock = clock
        self.silent_for = silent_for
        self.late = late

    async def decide(self, key: str, *, cost: int = 1, rate: Rate | None = None) -> Decision:
        from resilient.ratelimit._types import note_store_silence

        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError as cancelled:
            self.clock.advance(self.late)
            note_store_silence(cancelled, self.silent_for)
            raise
        raise AssertionError("never answers")


def silent_guard(clock: VirtualClock, primary: Any, **options: Any) -> FailOpenGuard:
    return FailOpenGuard(
        primary,
        GuardOptions(timeout=0.020, **options),
        fallback=LocalLimiter(SHARE, clock=clock),
        clock=clock,
        events=EventBus(log_when_unobserved=False),
    )


@pytest.mark.parametrize(
    ("silent_for", "late", "local"),
    [
        (0.0, 0.0, True),  # never left this process
        (0.0199, 0.0, True),  # sent 0.1 ms after the budget began
        (0.020, 0.0, False),  # silent for the whole budget: the store's fault
        (0.026, 0.010, True),  # sent at 4 ms; the cancellation came 10 ms late: 16 ms silent
        (0.031, 0.010, False),  # sent at once, cancelled 10 ms late: silent the whole 20 ms
    ],
)
async def test_a_spent_budget_is_the_stores_fault_only_if_it_was_silent_all_along(
    virtual_clock: VirtualClock, silent_for: float, late: float, local: bool
) -> None:
    guard = silent_guard(virtual_clock, SilentStore(virtual_clock, silent_for, late))
    first, second = await guard.decide("a"), await guard.decide("b")
    assert first.source is second.source is DecisionSource.FALLBACK
    if local:
        assert first.reason == "budget spent waiting in this process"
        assert (guard.stats.local_timeouts, guard.stats.timeouts) == (2, 0)
        assert guard.breaker.stats.failures == 0
    else:
        assert first.reason == "primary timeout"
        assert (guard.stats.local_timeouts, guard.stats.timeouts) == (0, 2)
        assert guard.breaker.stats.failures == 2
    await guard.aclose()


async def test_fail_closed_raises_with_the_fault_as_its_cause(virtual_clock: VirtualClock) -> None:
    guard = FailOpenGuard(
        SilentStore(virtual_clock, 0.020),
        GuardOptions(timeout=0.020, mode=GuardMode.FAIL_CLOSED),
        clock=virtual_clock,
        events=EventBus(log_when_unobserved=False),
    )
    for _ in range(2):
        with pytest.raises(LimiterUnavailable) as raised:
            await guard.decide("k")
        assert str(raised.value) == "rate limiter unavailable (primary timeout)"
        assert isinstance(raised.value.__cause__, TimeoutError)
        assert str(raised.value.__cause__) == "primary took over 0.02s"
    assert guard.stats.fail_closed == 2
    await guard.aclose()


async def test_every_kind_of_fault_is_counted_each_time(virtual_clock: VirtualClock) -> None:
    primary = FakePrimary(virtual_clock)
    guard = make_guard(
        virtual_clock, primary, mode=GuardMode.PASS_THROUGH, unavailable=(ConnectionError,)
    )
    guard.breaker = CircuitBreaker("b", BreakerOptions(failure_threshold=100), clock=virtual_clock)
    for error, counter in ((ConnectionError("x"), "unavailable"), (KeyError("x"), "errors")):
        primary.error = error
        decisions = [await guard.decide("k"), await guard.decide("k")]
        assert getattr(guard.stats, counter) == 2
        assert decisions[0] == (True, 0, 0.0, 0.0, DecisionSource.PASS_THROUGH, decisions[0].reason)
    assert guard.stats.pass_through == 4
    await guard.aclose()


async def test_each_failed_fallback_is_counted(virtual_clock: VirtualClock) -> None:
    class Broken:
        never_waits = True

        async def decide(self, key: str, *, cost: int = 1, rate: Rate | None = None) -> Decision:
            raise OSError("broken too")

    primary = FakePrimary(virtual_clock)
    primary.error = OSError("down")
    guard = FailOpenGuard(
        primary,
        fallback=Broken(),
        clock=virtual_clock,
        events=EventBus(log_when_unobserved=False),
    )
    first, _ = await guard.decide("k"), await guard.decide("k")
    assert guard.stats.fallback_failures == 2
    assert first.reason == "primary unavailable: OSError; fallback failed"
    await guard.aclose()


async def test_with_the_breaker_open_a_waiting_fallback_gets_a_whole_budget(
    virtual_clock: VirtualClock,
) -> None:
    primary = FakePrimary(virtual_clock)
    guard = FailOpenGuard(
        primary,
        GuardOptions(timeout=0.020),
        fallback=WaitingFallback(virtual_clock, delay=0.015),
        clock=virtual_clock,
        events=EventBus(log_when_unobserved=False),
    )
    for _ in range(5):
        permit = guard.breaker.try_acquire()
        assert permit is not None
        permit.failed(OSError("x"))
    decision = await guard.decide("k")
    assert decision.source is DecisionSource.FALLBACK
    assert decision.reason == "breaker open"
    assert virtual_clock.monotonic() == pytest.approx(0.015)
    await guard.aclose()


async def test_recovery_says_how_long_the_guard_was_degraded(virtual_clock: VirtualClock) -> None:
    primary = FakePrimary(virtual_clock)
    recorder = EventRecorder()
    bus = EventBus()
    bus.subscribe(recorder)
    guard = make_guard(virtual_clock, primary, bus)
    await virtual_clock.sleep(3.0)
    primary.error = OSError("down")
    await guard.decide("k")
    await virtual_clock.sleep(2.5)
    primary.error = None
    await guard.decide("k")
    assert [event.attributes["degraded_for"] for event in recorder.named("recovered")] == [2.5]
    await guard.aclose()
