"""Trip policies in virtual time: a failure rate and a slow-call rate over a count or a time
window trip at exactly the configured share, never before the minimum number of calls; slow
is measured from the permit on the breaker's clock; the windows' memory is fixed in bytes."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient.breaker import (
    BreakerOptions,
    BreakerState,
    CircuitBreaker,
    ConsecutiveFailures,
    CountWindow,
    FailureRate,
    TimeWindow,
    TripState,
)
from resilient.clock import VirtualClock
from resilient.errors import ArgumentTypeError, ArgumentValueError
from resilient.events import EventBus, EventRecorder


class Boom(Exception):
    pass


def breaker_with(
    policy: object, clock: VirtualClock, bus: EventBus | None = None
) -> CircuitBreaker:
    return CircuitBreaker(
        "dep",
        BreakerOptions(reset_timeout=10.0),
        policy=policy,  # type: ignore[arg-type]
        clock=clock,
        events=bus or EventBus(log_when_unobserved=False),
    )


def outcome(breaker: CircuitBreaker, failed: bool, clock: VirtualClock, took: float = 0.0) -> None:
    permit = breaker.try_acquire()
    assert permit is not None
    clock.advance(took)
    if failed:
        permit.failed(Boom())
    else:
        permit.succeeded()


def state_of(breaker: CircuitBreaker) -> BreakerState:
    return breaker.state


@pytest.mark.parametrize(
    ("size", "threshold", "failures"), [(10, 0.5, 5), (10, 0.3, 3), (4, 1.0, 4)]
)
def test_a_count_window_trips_at_exactly_the_failure_rate(
    size: int, threshold: float, failures: int
) -> None:
    clock = VirtualClock()
    policy = FailureRate(
        threshold, window=CountWindow(size), minimum_calls=size, slow_call_duration=math.inf
    )
    breaker = breaker_with(policy, clock)
    for _ in range(size - failures):
        outcome(breaker, False, clock)
    for index in range(failures):
        assert state_of(breaker) is BreakerState.CLOSED, index
        outcome(breaker, True, clock)
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.stats.trips == 1


def test_one_failure_short_of_the_rate_does_not_trip_and_old_calls_leave_the_window() -> None:
    clock = VirtualClock()
    policy = FailureRate(0.5, window=CountWindow(10), minimum_calls=10, slow_call_duration=math.inf)
    breaker = breaker_with(policy, clock)
    for failed in [True] * 4 + [False] * 6:
        outcome(breaker, failed, clock)
    assert state_of(breaker) is BreakerState.CLOSED  # 40%
    assert (policy.counts.calls, policy.counts.failures) == (10, 4)
    for _ in range(4):  # push the four failures out: they were the oldest
        outcome(breaker, False, clock)
    assert (policy.counts.calls, policy.counts.failures) == (10, 0)
    for _ in range(4):
        outcome(breaker, True, clock)
    assert state_of(breaker) is BreakerState.CLOSED  # 4 of 10
    outcome(breaker, True, clock)
    assert state_of(breaker) is BreakerState.OPEN  # 5 of 10


def test_no_rate_is_judged_before_the_minimum_number_of_calls() -> None:
    clock = VirtualClock()
    policy = FailureRate(
        0.5, window=CountWindow(100), minimum_calls=20, slow_call_duration=math.inf
    )
    breaker = breaker_with(policy, clock)
    for _ in range(19):
        outcome(breaker, True, clock)
    assert state_of(breaker) is BreakerState.CLOSED  # 100% of 19 calls: too few to judge
    outcome(breaker, True, clock)
    assert state_of(breaker) is BreakerState.OPEN


def test_a_success_that_reaches_the_minimum_can_trip_as_in_resilience4j() -> None:
    clock = VirtualClock()
    recorder = EventRecorder()
    bus = EventBus()
    bus.subscribe(recorder)
    policy = FailureRate(0.5, window=CountWindow(10), minimum_calls=10, slow_call_duration=math.inf)
    breaker = breaker_with(policy, clock, bus)
    for failed in [True] * 5 + [False] * 4:
        outcome(breaker, failed, clock)
    assert state_of(breaker) is BreakerState.CLOSED
    outcome(breaker, False, clock)  # the 10th call: 5 of 10 failed
    assert state_of(breaker) is BreakerState.OPEN
    assert recorder.events[0].attributes["reason"].endswith("tripped on a success in 0.000s")


def test_the_minimum_is_capped_at_a_count_windows_size() -> None:
    policy = FailureRate(window=CountWindow(10), minimum_calls=100)
    assert policy.minimum_calls == 10
    assert FailureRate(window=TimeWindow(60.0, 60), minimum_calls=100).minimum_calls == 100


def test_the_named_defaults_are_resilience4js() -> None:
    policy = FailureRate()
    assert policy.threshold == 0.5
    assert policy.window == CountWindow(100)
    assert policy.minimum_calls == 100
    assert policy.slow_call_duration == 60.0
    assert policy.slow_call_threshold == 1.0
    assert policy.timed
    assert TimeWindow() == TimeWindow(100.0, 100)
    assert repr(policy) == (
        "FailureRate(0.5, window=CountWindow(size=100), minimum_calls=100, "
        "slow_call_duration=60, slow_call_threshold=1)"
    )


def test_a_time_window_forgets_calls_older_than_its_span() -> None:
    clock = VirtualClock()
    policy = FailureRate(
        0.5, window=TimeWindow(10.0, 10), minimum_calls=4, slow_call_duration=math.inf
    )
    breaker = breaker_with(policy, clock)
    for _ in range(3):
        outcome(breaker, True, clock)
    assert state_of(breaker) is BreakerState.CLOSED  # 3 calls: below the minimum
    clock.advance(10.0)  # the three failures leave the window
    outcome(breaker, True, clock)
    assert (policy.counts.calls, policy.counts.failures) == (1, 1)
    for _ in range(2):
        outcome(breaker, False, clock)
    assert state_of(breaker) is BreakerState.CLOSED  # 1 of 3
    outcome(breaker, True, clock)
    assert state_of(breaker) is BreakerState.OPEN  # 2 of 4


def test_a_time_window_drops_its_buckets_one_at_a_time() -> None:
    clock = VirtualClock()
    policy = FailureRate(window=TimeWindow(4.0, 4), minimum_calls=1000, slow_call_duration=math.inf)
    breaker = breaker_with(policy, clock)
    for second in range(4):  # one call in each of four one-second buckets
        outcome(breaker, second % 2 == 0, clock)
        clock.advance(1.0)
    assert (policy.counts.calls, policy.counts.failures) == (4, 2)  # counted when recorded
    outcome(breaker, False, clock)  # t=4: bucket 0 (a failure) leaves
    assert (policy.counts.calls, policy.counts.failures) == (4, 1)
    clock.advance(2.0)  # t=6: buckets 1 and 2 leave
    outcome(breaker, False, clock)
    assert (policy.counts.calls, policy.counts.failures) == (3, 0)
    clock.advance(1000.0)  # everything leaves at once
    outcome(breaker, True, clock)
    assert (policy.counts.calls, policy.counts.failures, policy.counts.slow) == (1, 1, 0)


@pytest.mark.parametrize("window", [CountWindow(10), TimeWindow(60.0, 10)])
def test_slow_calls_trip_at_exactly_the_slow_call_rate(window: CountWindow | TimeWindow) -> None:
    clock = VirtualClock()
    policy = FailureRate(
        1.0, window=window, minimum_calls=10, slow_call_duration=2.0, slow_call_threshold=0.5
    )
    breaker = breaker_with(policy, clock)
    for _ in range(5):
        outcome(breaker, False, clock, took=2.0)  # exactly the threshold: not slow
    for index in range(5):
        assert state_of(breaker) is BreakerState.CLOSED, index
        outcome(breaker, False, clock, took=2.001)
    assert state_of(breaker) is BreakerState.OPEN
    assert policy.counts.slow == 5
    assert breaker.stats.failures == 0  # slow successes are successes, and trip by their rate


async def test_time_queued_before_the_permit_is_not_the_dependencys() -> None:
    """Many callers queue for a local semaphore; only the call itself is timed."""
    clock = VirtualClock(autojump=True)
    policy = FailureRate(
        window=CountWindow(50), minimum_calls=10, slow_call_duration=1.0, slow_call_threshold=0.1
    )
    breaker = breaker_with(policy, clock)
    local = asyncio.Semaphore(1)

    async def dependency() -> str:
        await clock.sleep(0.5)  # always healthy: half the slow threshold
        return "ok"

    async def caller() -> str:
        async with local:  # up to 999 * 0.5 s queued here, in this process
            return await breaker.call(dependency)

    results = await asyncio.gather(*(caller() for _ in range(1000)))
    assert results == ["ok"] * 1000
    assert state_of(breaker) is BreakerState.CLOSED
    assert (breaker.stats.successes, breaker.stats.trips, policy.counts.slow) == (1000, 0, 0)


async def test_a_healthy_dependency_never_trips_at_high_concurrency() -> None:
    clock = VirtualClock(autojump=True)
    policy = ConsecutiveFailures(1) | FailureRate(
        0.01, window=TimeWindow(1.0, 10), minimum_calls=1, slow_call_duration=0.2
    )
    breaker = breaker_with(policy, clock)

    async def dependency(delay: float) -> None:
        await clock.sleep(delay)

    await asyncio.gather(*(breaker.call(dependency, (i % 10) / 100) for i in range(5000)))
    assert (breaker.stats.successes, breaker.stats.trips) == (5000, 0)


def test_policies_compose_and_each_counts_every_outcome() -> None:
    clock = VirtualClock()
    rate = FailureRate(0.5, window=CountWindow(4), minimum_calls=4, slow_call_duration=math.inf)
    policy = ConsecutiveFailures(3) | rate
    assert repr(policy).startswith("ConsecutiveFailures(3) | FailureRate(0.5")
    assert not policy.timed
    breaker = breaker_with(policy, clock)
    for failed in (True, False, True, False):
        outcome(breaker, failed, clock)
    assert state_of(breaker) is BreakerState.OPEN  # the rate: 2 of 4, never 3 in a row
    assert rate.counts.calls == 4
    nested = policy | ConsecutiveFailures(9)
    assert len(nested.policies) == 3


def test_the_window_starts_afresh_after_each_transition() -> None:
    clock = VirtualClock()
    policy = FailureRate(0.5, window=CountWindow(4), minimum_calls=4, slow_call_duration=math.inf)
    breaker = breaker_with(policy, clock)
    for _ in range(4):
        outcome(breaker, True, clock)
    assert state_of(breaker) is BreakerState.OPEN
    clock.advance(10.0)
    outcome(breaker, False, clock)  # the probe closes it
    assert state_of(breaker) is BreakerState.CLOSED
    outcome(breaker, True, clock)
    assert (policy.counts.calls, policy.counts.failures) == (1, 1)


def test_the_window_starts_afresh_after_every_recovery_not_only_the_first() -> None:
    clock = VirtualClock()
    policy = FailureRate(0.5, window=CountWindow(4), minimum_calls=4, slow_call_duration=math.inf)
    breaker = breaker_with(policy, clock)
    for _ in range(2):
        for _ in range(4):
            outcome(breaker, True, clock)
        assert state_of(breaker) is BreakerState.OPEN
        clock.advance(10.0)
        outcome(breaker, False, clock)  # the probe closes it
    for failed in (False, True, False):
        outcome(breaker, failed, clock)
    assert state_of(breaker) is BreakerState.CLOSED
    assert (policy.counts.calls, policy.counts.failures) == (3, 1)


def test_a_window_policy_belongs_to_one_breaker() -> None:
    clock = VirtualClock()
    policy = FailureRate(slow_call_duration=math.inf)
    first, second = breaker_with(policy, clock), breaker_with(policy, clock)
    outcome(first, True, clock)
    with pytest.raises(ArgumentValueError, match="already counts for another breaker"):
        outcome(second, True, clock)


@pytest.mark.parametrize(
    ("window", "size"), [(CountWindow(1_000_000), 1_000_000), (TimeWindow(1.0, 10_000), 320_000)]
)
def test_the_memory_is_fixed_in_bytes_whatever_the_traffic(
    window: CountWindow | TimeWindow, size: int
) -> None:
    clock = VirtualClock()
    policy = FailureRate(window=window)
    breaker = breaker_with(policy, clock)
    assert policy.memory_bytes == size
    for index in range(2000):
        outcome(breaker, index % 3 == 0, clock, took=0.001)
    assert policy.memory_bytes == size


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: FailureRate(0), ArgumentValueError, "FailureRate.threshold must be"),
        (lambda: FailureRate(1.5), ArgumentValueError, "FailureRate.threshold must be"),
        (lambda: FailureRate(math.nan), ArgumentValueError, "FailureRate.threshold must be"),
        (lambda: FailureRate(True), ArgumentTypeError, "FailureRate.threshold must be"),
        (lambda: FailureRate(minimum_calls=0), ArgumentValueError, "FailureRate.minimum_calls"),
        (
            lambda: FailureRate(slow_call_duration=-1),
            ArgumentValueError,
            "FailureRate.slow_call_duration",
        ),
        (
            lambda: FailureRate(slow_call_threshold=0),
            ArgumentValueError,
            "FailureRate.slow_call_threshold",
        ),
        (lambda: FailureRate(window=100), ArgumentTypeError, "FailureRate.window must be a Count"),
        (lambda: CountWindow(0), ArgumentValueError, "CountWindow.size must be an int >= 1"),
        (lambda: CountWindow(1_000_001), ArgumentValueError, "CountWindow.size must be"),
        (lambda: CountWindow(10.0), ArgumentTypeError, "CountWindow.size must be"),
        (lambda: TimeWindow(0), ArgumentValueError, "TimeWindow.seconds must be"),
        (lambda: TimeWindow(math.inf), ArgumentValueError, "TimeWindow.seconds must be"),
        (lambda: TimeWindow(10.0, 10_001), ArgumentValueError, "TimeWindow.buckets must be"),
        (lambda: ConsecutiveFailures(0), ArgumentValueError, "ConsecutiveFailures.threshold"),
    ],
)
def test_hostile_policy_arguments_are_refused_by_name(
    build: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=f"^{message}"):
        build()  # type: ignore[operator]


def test_an_untimed_policy_costs_no_clock_read() -> None:
    class CountingClock(VirtualClock):
        reads = 0

        def monotonic(self) -> float:
            CountingClock.reads += 1
            return super().monotonic()

    clock = CountingClock()
    breaker = breaker_with(FailureRate(slow_call_duration=math.inf), clock)
    for failed in (False, True, False):
        outcome(breaker, failed, clock)
    assert CountingClock.reads == 0
    state = TripState(breaker._storage)
    assert (state.now, state.duration, state.epoch) == (0.0, 0.0, 0)


# -- the windows against a plain model (every step, every count) ------------------------------

STEPS = st.lists(
    st.tuples(st.booleans(), st.booleans(), st.sampled_from([0.0, 0.3, 1.0, 2.5, 7.0])),
    max_size=80,
)


@given(size=st.integers(min_value=1, max_value=6), steps=STEPS)
def test_a_count_window_holds_exactly_the_last_size_calls(
    size: int, steps: list[tuple[bool, bool, float]]
) -> None:
    counts = CountWindow(size).counts()
    model: list[tuple[bool, bool]] = []
    for failed, slow, _ in steps:
        counts.record(0.0, failed, slow)
        model = [*model, (failed, slow)][-size:]
        assert (counts.calls, counts.failures, counts.slow) == (
            len(model),
            sum(f for f, _ in model),
            sum(s for _, s in model),
        )
    assert counts.memory_bytes == size


@given(buckets=st.integers(min_value=1, max_value=5), steps=STEPS)
def test_a_time_window_holds_exactly_the_calls_of_its_last_buckets(
    buckets: int, steps: list[tuple[bool, bool, float]]
) -> None:
    width = 1.0
    counts = TimeWindow(width * buckets, buckets).counts()
    now = 0.0
    model: list[tuple[int, bool, bool]] = []
    for failed, slow, advance in steps:
        now += advance
        counts.record(now, failed, slow)
        bucket = math.floor(now / width)
        model = [entry for entry in [*model, (bucket, failed, slow)] if entry[0] > bucket - buckets]
        assert (counts.calls, counts.failures, counts.slow) == (
            len(model),
            sum(f for _, f, _ in model),
            sum(s for _, _, s in model),
        )
    assert counts.memory_bytes == 32 * buckets


def test_the_windows_are_frozen_slotted_values_and_refuse_in_exact_words() -> None:
    import dataclasses

    for window, field in ((CountWindow(3), "size"), (TimeWindow(1.0, 1), "buckets")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(window, field, 4)
        assert not hasattr(window, "__dict__")
    with pytest.raises(ArgumentValueError) as refused:
        TimeWindow(-1.0)
    assert (
        str(refused.value) == "TimeWindow.seconds must be a finite number of seconds > 0, got -1.0"
    )
    with pytest.raises(ArgumentValueError) as refused:
        TimeWindow(1.0, 0)
    assert str(refused.value) == "TimeWindow.buckets must be an int >= 1 and <= 10000, got 0"


# -- the policies' edges, exactly (mutation survivors) -----------------------------------------


def test_a_few_slow_calls_below_the_slow_rate_do_not_trip() -> None:
    clock = VirtualClock()
    policy = FailureRate(
        1.0,
        window=CountWindow(10),
        minimum_calls=4,
        slow_call_duration=1.0,
        slow_call_threshold=0.5,
    )
    breaker = breaker_with(policy, clock)
    for took in (0.0, 0.0, 0.0, 0.0, 2.0):
        outcome(breaker, False, clock, took=took)
    assert state_of(breaker) is BreakerState.CLOSED  # 1 slow call of 5
    assert policy.counts.slow == 1


def test_after_a_transition_the_window_counts_every_call() -> None:
    clock = VirtualClock()
    policy = FailureRate(0.5, window=CountWindow(4), minimum_calls=4, slow_call_duration=math.inf)
    breaker = breaker_with(policy, clock)
    for _ in range(4):
        outcome(breaker, True, clock)
    clock.advance(10.0)
    outcome(breaker, False, clock)  # the probe closes it: a new epoch
    for failed in (False, True, False):
        outcome(breaker, failed, clock)
    assert (policy.counts.calls, policy.counts.failures) == (3, 1)


def test_any_of_says_exactly_whether_it_trips_and_whether_it_is_timed() -> None:
    class Untimed:
        def on_success(self, state: TripState) -> None:
            return None

        def on_failure(self, state: TripState) -> bool:
            return False

    clock = VirtualClock()
    state = TripState(breaker_with(None, clock)._storage)
    assert ConsecutiveFailures(1).timed is False
    quiet_rate = FailureRate(minimum_calls=1000, slow_call_duration=math.inf)
    assert (ConsecutiveFailures(1) | quiet_rate).timed is False
    assert (ConsecutiveFailures(1) | FailureRate()).timed is True
    assert (ConsecutiveFailures(1) | Untimed()).timed is False  # type: ignore[operator]
    calm = ConsecutiveFailures(5) | Untimed()  # type: ignore[operator]
    assert calm.on_success(state) is False
    assert calm.on_failure(state) is False
    assert (ConsecutiveFailures(1) | Untimed()).on_failure(state) is True  # type: ignore[operator]


def test_the_policy_refusals_in_exact_words() -> None:
    cases = [
        (
            lambda: FailureRate(0),
            "FailureRate.threshold must be a finite number of share > 0 and <= 1, got 0",
        ),
        (
            lambda: FailureRate(slow_call_duration=-1),
            "FailureRate.slow_call_duration must be a number of seconds >= 0, got -1",
        ),
        (
            lambda: FailureRate(slow_call_threshold=1.5),
            "FailureRate.slow_call_threshold must be "
            "a finite number of share > 0 and <= 1, got 1.5",
        ),
    ]
    for build, message in cases:
        with pytest.raises(ArgumentValueError) as refused:
            build()
        assert str(refused.value) == message
    clock = VirtualClock()
    policy = FailureRate(slow_call_duration=math.inf)
    outcome(breaker_with(policy, clock), True, clock)
    with pytest.raises(ArgumentValueError) as refused:
        outcome(breaker_with(policy, clock), True, clock)
    assert (
        str(refused.value)
        == f"{policy!r} already counts for another breaker: give each breaker its own"
    )
