"""FailOpenGuard: a primary that cannot answer never becomes a denial; the fallback still limits."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from resilient.breaker import BreakerState
from resilient.clock import VirtualClock
from resilient.events import EventBus, EventRecorder
from resilient.ratelimit import (
    Decision,
    DecisionSource,
    FailOpenGuard,
    GuardMode,
    GuardOptions,
    LimiterUnavailable,
    Rate,
)
from tests.resilient.guard_world import (
    SHARE,
    FakePrimary,
    RedisErrors,
    make_guard,
    state_of,
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
