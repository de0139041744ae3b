"""FailOpenGuard: its counters, refusals and budgets, exactly, and whose fault a spent budget is."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from resilient.breaker import BreakerOptions, BreakerState, CircuitBreaker
from resilient.clock import VirtualClock
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
from tests.resilient.guard_world import (
    GLOBAL,
    SHARE,
    FakePrimary,
    make_guard,
    state_of,
)

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
