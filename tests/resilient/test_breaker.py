"""CircuitBreaker: trips, recovers in virtual time, bounds probes, holds no lock across await."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient.breaker import (
    BreakerOptions,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    TripState,
)
from resilient.clock import VirtualClock
from resilient.events import EventBus, EventRecorder


class Boom(Exception):
    pass


class NotFound(Exception):
    pass


async def ok() -> str:
    return "ok"


async def fail() -> str:
    raise Boom("dependency down")


def make_breaker(
    clock: VirtualClock,
    bus: EventBus | None = None,
    **options: object,
) -> CircuitBreaker:
    settings = {"failure_threshold": 3, "reset_timeout": 10.0, **options}
    return CircuitBreaker(
        "dep",
        BreakerOptions(**settings),  # type: ignore[arg-type]
        clock=clock,
        events=bus or EventBus(log_when_unobserved=False),
    )


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """The breaker's state, read fresh (a function call, so type checkers do not narrow it)."""
    return breaker.state


async def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.options.failure_threshold):
        with pytest.raises(Boom):
            await breaker.call(fail)
    assert state_of(breaker) is BreakerState.OPEN


async def test_trips_after_the_threshold_of_consecutive_failures() -> None:
    breaker = make_breaker(VirtualClock())
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.call(fail)
    assert breaker.failure_count == 2
    assert await breaker.call(ok) == "ok"  # a success breaks the run
    assert breaker.failure_count == 0
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.call(fail)
    assert state_of(breaker) is BreakerState.CLOSED
    with pytest.raises(Boom):
        await breaker.call(fail)
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.stats.trips == 1


async def test_an_open_circuit_rejects_without_calling() -> None:
    clock = VirtualClock()
    breaker = make_breaker(clock)
    await trip(breaker)
    calls = 0

    async def counted() -> None:
        nonlocal calls
        calls += 1

    clock.advance(4.0)
    with pytest.raises(CircuitOpenError) as raised:
        await breaker.call(counted)
    assert calls == 0
    assert raised.value.retry_after == pytest.approx(6.0)
    assert not breaker.allows_call()
    assert breaker.try_acquire() is None
    assert breaker.stats.rejected == 2


async def test_the_reset_timeout_runs_on_the_injected_clock() -> None:
    clock = VirtualClock()
    breaker = make_breaker(clock)
    await trip(breaker)
    clock.advance(9.999)
    assert state_of(breaker) is BreakerState.OPEN
    clock.advance(0.001)
    assert breaker.allows_call()
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert await breaker.call(ok) == "ok"
    assert state_of(breaker) is BreakerState.CLOSED


async def test_a_failed_probe_opens_the_circuit_for_another_reset_timeout() -> None:
    clock = VirtualClock()
    breaker = make_breaker(clock)
    await trip(breaker)
    clock.advance(10.0)
    with pytest.raises(Boom):
        await breaker.call(fail)
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.retry_after == pytest.approx(10.0)
    clock.advance(10.0)
    assert state_of(breaker) is BreakerState.HALF_OPEN


@pytest.mark.parametrize("max_probes", [1, 3])
async def test_half_open_admits_at_most_max_probes_among_many_callers(max_probes: int) -> None:
    clock = VirtualClock()
    breaker = make_breaker(clock, half_open_max_calls=max_probes)
    await trip(breaker)
    clock.advance(10.0)
    release = asyncio.Event()
    running = 0
    most = 0

    async def probe() -> str:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        return "ok"

    tasks = [asyncio.create_task(breaker.call(probe)) for _ in range(20)]
    await asyncio.sleep(0)
    rejected = [t for t in tasks if t.done()]
    assert len(rejected) == 20 - max_probes
    assert all(isinstance(t.exception(), CircuitOpenError) for t in rejected)
    assert running == max_probes
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results.count("ok") == max_probes
    assert most == max_probes
    assert state_of(breaker) is BreakerState.CLOSED


async def test_every_transition_emits_a_typed_event() -> None:
    clock = VirtualClock()
    recorder = EventRecorder()
    bus = EventBus()
    bus.subscribe(recorder)
    breaker = make_breaker(clock, bus)
    await trip(breaker)
    clock.advance(10.0)
    with pytest.raises(Boom):
        await breaker.call(fail)
    clock.advance(10.0)
    await breaker.call(ok)
    assert [e.name for e in recorder.events] == [
        "opened",
        "half_opened",
        "opened",
        "half_opened",
        "closed",
    ]
    assert all(e.source == "breaker" and e.attributes["breaker"] == "dep" for e in recorder.events)
    first = recorder.events[0]
    assert first.attributes["failures"] == 3
    assert first.attributes["previous"] == "closed"
    assert "Boom" in first.attributes["reason"]
    assert first.time == 0.0
    assert recorder.events[2].attributes["reason"] == "probe failed: Boom"
    assert recorder.events[4].attributes["reason"] == "probe succeeded"
    assert recorder.events[4].time == 20.0


async def test_a_cancelled_probe_frees_its_slot_and_counts_as_nothing() -> None:
    clock = VirtualClock()
    breaker = make_breaker(clock)
    await trip(breaker)
    clock.advance(10.0)
    hang = asyncio.Event()

    async def stuck() -> None:
        await hang.wait()

    probe = asyncio.create_task(breaker.call(stuck))
    await asyncio.sleep(0)
    assert not breaker.allows_call()  # the only slot is taken
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert breaker.stats.cancelled == 1
    assert breaker.stats.failures == 3  # the trip only
    assert breaker.allows_call()
    assert await breaker.call(ok) == "ok"
    assert state_of(breaker) is BreakerState.CLOSED


async def test_a_cancelled_call_while_closed_is_not_a_failure() -> None:
    breaker = make_breaker(VirtualClock(), failure_threshold=1)
    task = asyncio.create_task(breaker.call(asyncio.Event().wait))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.failure_count == 0


async def test_no_threading_lock_is_held_while_a_call_awaits() -> None:
    breaker = make_breaker(VirtualClock())
    inside = asyncio.Event()
    leave = asyncio.Event()

    async def slow() -> str:
        inside.set()
        await leave.wait()
        return "slow"

    slow_call = asyncio.create_task(breaker.call(slow))
    await inside.wait()
    lock = breaker._machine._lock

    def lock_is_free() -> bool:
        if lock.acquire(blocking=False):
            lock.release()
            return True
        return False

    assert await asyncio.to_thread(lock_is_free)
    # Another task uses the breaker while the slow call is in flight.
    assert state_of(breaker) is BreakerState.CLOSED
    assert await breaker.call(ok) == "ok"
    leave.set()
    assert await slow_call == "slow"


async def test_a_call_started_before_a_transition_does_not_count_after_it() -> None:
    clock = VirtualClock()
    breaker = make_breaker(clock)
    leave = asyncio.Event()

    async def late() -> str:
        await leave.wait()
        return "late"

    straggler = asyncio.create_task(breaker.call(late))
    await asyncio.sleep(0)
    await trip(breaker)
    clock.advance(10.0)
    assert state_of(breaker) is BreakerState.HALF_OPEN
    leave.set()
    assert await straggler == "late"
    # Started while closed: its success must not close the half-open circuit.
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert breaker.stats.ignored == 1


async def test_excluded_errors_are_successes() -> None:
    breaker = make_breaker(VirtualClock(), failure_threshold=1, exclude=(NotFound,))

    async def missing() -> None:
        raise NotFound

    with pytest.raises(NotFound):
        await breaker.call(missing)
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.stats.successes == 1


async def test_the_context_manager_is_one_call_through_the_circuit() -> None:
    clock = VirtualClock()
    breaker = make_breaker(clock, failure_threshold=1)
    with pytest.raises(Boom):
        async with breaker.calling():
            raise Boom
    with pytest.raises(CircuitOpenError):
        async with breaker.calling():
            pytest.fail("an open circuit must not run the block")
    clock.advance(10.0)
    async with breaker.calling() as permit:
        assert permit.probe
    assert state_of(breaker) is BreakerState.CLOSED


@given(
    threshold=st.integers(min_value=1, max_value=4),
    outcomes=st.lists(st.booleans(), max_size=60),
)
def test_the_failure_count_is_exactly_the_run_of_failures_since_the_last_success(
    threshold: int, outcomes: list[bool]
) -> None:
    """Successes while nothing counts against the circuit take a shortcut; the count in
    pybreaker's storage, the trip and every counter still follow the plain model."""
    breaker = make_breaker(VirtualClock(), failure_threshold=threshold)
    run = successes = failures = 0
    for succeeded in outcomes:
        permit = breaker.try_acquire()
        assert permit is not None
        if succeeded:
            permit.succeeded()
            run = 0
            successes += 1
        else:
            permit.failed(Boom())
            run += 1
            failures += 1
        if run == threshold:
            assert state_of(breaker) is BreakerState.OPEN
            assert breaker.stats.trips == 1
            break
        assert state_of(breaker) is BreakerState.CLOSED
        assert breaker.failure_count == run
    assert (breaker.stats.successes, breaker.stats.failures) == (successes, failures)
    assert breaker.stats.ignored == breaker.stats.cancelled == 0


async def test_a_fault_after_many_successes_and_a_recovery_still_trips_after_the_threshold() -> (
    None
):
    clock = VirtualClock()
    breaker = make_breaker(clock)
    await trip(breaker)
    clock.advance(10.0)
    assert await breaker.call(ok) == "ok"  # the probe closes the circuit
    assert state_of(breaker) is BreakerState.CLOSED
    for _ in range(1000):
        await breaker.call(ok)
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.call(fail)
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.failure_count == 2
    with pytest.raises(Boom):
        await breaker.call(fail)
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.stats.trips == 2
    assert breaker.stats.successes == 1001


async def test_a_closed_permit_from_before_a_trip_and_recovery_is_ignored() -> None:
    clock = VirtualClock()
    breaker = make_breaker(clock)
    old = breaker.try_acquire()
    assert old is not None
    await trip(breaker)
    clock.advance(10.0)
    await breaker.call(ok)  # closed again, nothing counted: the quiet state of a new generation
    successes = breaker.stats.successes
    old.succeeded()
    assert breaker.stats.ignored == 1
    assert breaker.stats.successes == successes


async def test_a_custom_policy_is_told_of_every_success() -> None:
    class CountingPolicy:
        def __init__(self) -> None:
            self.successes = 0

        def on_success(self, state: TripState) -> None:
            self.successes += 1

        def on_failure(self, state: TripState) -> bool:
            return False

    policy = CountingPolicy()
    breaker = CircuitBreaker(
        "dep", policy=policy, clock=VirtualClock(), events=EventBus(log_when_unobserved=False)
    )
    for _ in range(5):
        await breaker.call(ok)
    assert policy.successes == 5


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"half_open_max_calls": 0}, "half_open_max_calls"),
        ({"reset_timeout": -1.0}, "reset_timeout"),
        ({"reset_timeout": float("inf")}, "reset_timeout"),
    ],
)
def test_bad_options_name_the_field(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"BreakerOptions.{field}"):
        BreakerOptions(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"exclude": [Boom]}, "exclude"),
        ({"failure_threshold": 2.0}, "failure_threshold"),
        ({"reset_timeout": True}, "reset_timeout"),
    ],
)
def test_options_of_the_wrong_type_name_the_field(options: dict[str, object], field: str) -> None:
    with pytest.raises(TypeError, match=f"BreakerOptions.{field}"):
        BreakerOptions(**options)  # type: ignore[arg-type]


def test_a_trip_state_reads_counts_and_resets_the_storage() -> None:
    import pybreaker

    storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
    state = TripState(storage)
    assert state.failures == 0
    assert state.add_failure() == 1
    assert state.add_failure() == 2
    assert (state.failures, storage.counter) == (2, 2)
    state.reset_failures()
    assert (state.failures, storage.counter) == (0, 0)


def test_consecutive_failures_trips_at_its_threshold_and_a_success_resets_it() -> None:
    import pybreaker

    from resilient.breaker import ConsecutiveFailures
    from resilient.errors import ArgumentValueError

    policy = ConsecutiveFailures(3)
    assert repr(policy) == "ConsecutiveFailures(3)"
    state = TripState(pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED))
    assert [policy.on_failure(state), policy.on_failure(state)] == [False, False]
    policy.on_success(state)
    assert state.failures == 0
    assert [policy.on_failure(state) for _ in range(3)] == [False, False, True]
    with pytest.raises(ArgumentValueError, match=r"^ConsecutiveFailures\.threshold must be"):
        ConsecutiveFailures(0)


# -- the counters, the probe slots and the constructor, exactly (mutation survivors) ----------


async def test_every_rejection_is_counted_open_or_with_every_slot_taken() -> None:
    clock = VirtualClock()
    breaker = make_breaker(clock, half_open_max_calls=1)
    assert breaker.allows_call() is True
    assert breaker.retry_after == 0.0  # closed: nothing to wait for
    await trip(breaker)
    assert breaker.try_acquire() is None
    assert breaker.try_acquire() is None
    assert breaker.stats.rejected == 2
    clock.advance(10.0)
    assert breaker.retry_after == 0.0  # due, not yet read as half-open: never negative
    probe = breaker.try_acquire()
    assert probe is not None
    assert probe.probe
    assert breaker.try_acquire() is None  # the one slot is taken
    assert breaker.stats.rejected == 3
    probe.released()
    assert breaker.stats.cancelled == 1


async def test_a_permit_is_settled_once_whatever_is_reported_after() -> None:
    clock = VirtualClock()
    breaker = make_breaker(clock, half_open_max_calls=2)
    await trip(breaker)
    clock.advance(10.0)
    first, second = breaker.try_acquire(), breaker.try_acquire()
    assert first is not None
    assert second is not None
    first.released()
    first.released()
    first.failed(Boom("late"))
    first.succeeded()
    assert (breaker.stats.cancelled, breaker.stats.failures, breaker.stats.successes) == (1, 3, 0)
    assert state_of(breaker) is BreakerState.HALF_OPEN
    third = breaker.try_acquire()  # the one slot the first freed, once
    assert third is not None
    assert breaker.try_acquire() is None
    second.released()
    third.released()
    assert breaker.stats.cancelled == 3
    fourth = breaker.try_acquire()
    assert fourth is not None
    fourth.succeeded()
    fourth.succeeded()
    assert state_of(breaker) is BreakerState.CLOSED
    assert (breaker.stats.successes, breaker.stats.ignored) == (1, 0)


def test_the_stats_are_a_slotted_value() -> None:
    from resilient.breaker import BreakerStats

    stats = BreakerStats()
    assert stats == BreakerStats(0, 0, 0, 0, 0, 0)
    assert repr(stats) == (
        "BreakerStats(successes=0, failures=0, rejected=0, cancelled=0, ignored=0, trips=0)"
    )
    assert not hasattr(stats, "__dict__")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: CircuitBreaker(""), "CircuitBreaker.name must be a non-empty str, got ''"),
        (
            lambda: CircuitBreaker("dep", 3),  # type: ignore[arg-type]
            "CircuitBreaker.options must be a BreakerOptions, got 3",
        ),
    ],
)
def test_the_constructor_refuses_in_exact_words(build: object, message: str) -> None:
    with pytest.raises((TypeError, ValueError)) as raised:
        build()  # type: ignore[operator]
    assert str(raised.value) == message


async def test_a_predicate_that_raises_is_logged_by_the_breakers_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(error: BaseException) -> bool:
        raise RuntimeError("bug in the predicate")

    breaker = make_breaker(VirtualClock(), exclude=(broken,))
    with caplog.at_level("ERROR", logger="resilient.breaker"), pytest.raises(Boom):
        await breaker.call(fail)
    assert breaker.stats.failures == 1
    assert [record.name for record in caplog.records] == ["resilient.breaker"]
    assert caplog.records[0].getMessage() == (
        f"breaker 'dep': exclude predicate {broken!r} raised on Boom('dependency down'); "
        "counted as a failure"
    )


@pytest.mark.parametrize(
    ("state", "retry_after", "message"),
    [
        (BreakerState.OPEN, 1.5, "circuit 'dep' is open; probes in 1.500s"),
        (BreakerState.HALF_OPEN, 0.0, "circuit 'dep' is half-open; every probe slot is taken"),
    ],
)
def test_a_refusal_says_where_the_circuit_is(
    state: BreakerState, retry_after: float, message: str
) -> None:
    error = CircuitOpenError("dep", state, retry_after)
    assert str(error) == message
    assert (error.name, error.state, error.retry_after) == ("dep", state, retry_after)


# -- stale outcomes, exclusions, reasons and the transitions' events, exactly ---------------


async def test_each_stale_outcome_is_ignored_and_counted() -> None:
    clock = VirtualClock()
    breaker = make_breaker(clock, half_open_max_calls=2)
    early = breaker.try_acquire()  # the closed circuit's permit, quiet
    assert early is not None
    await trip(breaker)
    early.succeeded()  # started before the circuit opened: says nothing about it now
    assert (breaker.stats.successes, breaker.stats.ignored) == (0, 1)
    clock.advance(10.0)
    first, second = breaker.try_acquire(), breaker.try_acquire()
    assert first is not None
    assert second is not None
    first.succeeded()  # closes the circuit
    second.failed(Boom("late"))  # a probe of the half-open circuit that is gone
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.failure_count == 0
    assert (breaker.stats.ignored, breaker.stats.failures) == (2, 3)


async def test_any_exclusion_in_the_tuple_excludes() -> None:
    breaker = make_breaker(VirtualClock(), exclude=(KeyError, NotFound, lambda e: "skip" in str(e)))
    for error in (NotFound("x"), Boom("skip me"), KeyError("k")):
        permit = breaker.try_acquire()
        assert permit is not None
        permit.failed(error)
    assert (breaker.stats.failures, breaker.stats.successes) == (0, 3)
    assert breaker.failure_count == 0


async def test_the_transitions_say_why_and_from_where() -> None:
    clock = VirtualClock()
    recorder = EventRecorder()
    bus = EventBus()
    bus.subscribe(recorder)
    breaker = make_breaker(clock, bus)
    assert repr(breaker) == "CircuitBreaker('dep', state=closed)"
    await trip(breaker)
    clock.advance(10.0)
    assert await breaker.call(ok) == "ok"
    told = [(e.name, e.attributes["previous"], e.attributes["reason"]) for e in recorder.events]
    assert told == [
        ("opened", "closed", "ConsecutiveFailures(3) tripped on Boom"),
        ("half_opened", "open", "reset timeout elapsed"),
        ("closed", "half-open", "probe succeeded"),
    ]


# -- what a permit and a refusal tell the caller, exactly --------------------------------------


async def test_a_caller_refused_for_want_of_a_probe_slot_may_retry_at_once() -> None:
    clock = VirtualClock()
    breaker = make_breaker(clock)
    await trip(breaker)
    clock.advance(10.0)
    probe = breaker.try_acquire()
    assert probe is not None
    with pytest.raises(CircuitOpenError) as refused:
        await breaker.call(ok)
    assert (refused.value.state, refused.value.retry_after) == (BreakerState.HALF_OPEN, 0.0)


async def test_a_permit_says_whether_it_is_a_probe_and_when_it_started() -> None:
    from resilient.breaker import FailureRate

    clock = VirtualClock()
    untimed = make_breaker(clock)
    timed = CircuitBreaker(
        "timed",
        BreakerOptions(failure_threshold=3, reset_timeout=10.0),
        policy=FailureRate(minimum_calls=1, slow_call_duration=1.0),
        clock=clock,
        events=EventBus(log_when_unobserved=False),
    )
    clock.advance(5.0)
    closed, untimed_closed = timed.try_acquire(), untimed.try_acquire()
    assert closed is not None
    assert untimed_closed is not None
    assert (closed.probe, closed.started) == (False, 5.0)
    assert (untimed_closed.probe, untimed_closed.started) == (False, 0.0)  # no clock read
    untimed_closed.succeeded()
    closed.failed(Boom())  # a failure rate of 1 over 1 call: open
    await trip(untimed)
    clock.advance(10.0)
    untimed_probe, timed_probe = untimed.try_acquire(), timed.try_acquire()
    assert untimed_probe is not None
    assert timed_probe is not None
    assert (untimed_probe.probe, untimed_probe.started) == (True, 0.0)  # no clock read
    assert (timed_probe.probe, timed_probe.started) == (True, 15.0)


async def test_a_policy_without_a_timed_attribute_is_told_no_time() -> None:
    class Durations:
        def __init__(self) -> None:
            self.told: list[tuple[float, float]] = []

        def on_success(self, state: TripState) -> None:
            self.told.append((state.now, state.duration))

        def on_failure(self, state: TripState) -> bool:
            self.told.append((state.now, state.duration))
            return False

    clock = VirtualClock()
    policy = Durations()
    breaker = CircuitBreaker(
        "dep", policy=policy, clock=clock, events=EventBus(log_when_unobserved=False)
    )
    clock.advance(3.0)
    permit = breaker.try_acquire()
    assert permit is not None
    clock.advance(2.0)
    permit.failed(Boom())
    assert policy.told == [(0.0, 0.0)]
