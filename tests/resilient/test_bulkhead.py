"""Bulkhead: the bound at every admission, a first-come line that is bounded in length and in
time, load shedding with its reason, every permit back on every path, and a limit that hears
only of the dependency's own latency.

Every test runs in virtual time (an autojumping :class:`VirtualClock`): no sleeps, no timing
assertions but virtual ones.
"""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from resilient.bulkhead import (
    AdaptiveThrottle,
    AIMDLimit,
    AIMDLimitOptions,
    Bulkhead,
    BulkheadOptions,
    FixedLimit,
    Gradient2Limit,
    Gradient2LimitOptions,
    Sample,
)
from resilient.clock import VirtualClock
from resilient.errors import (
    BulkheadDeadlineError,
    BulkheadFullError,
    LoadShedError,
    PoolTimeoutError,
    ThrottledError,
)
from resilient.events import EventBus, EventRecorder
from tests.resilient.bulkhead_world import Dependency, Load, quiet


def bulkhead_for(
    clock: VirtualClock,
    limit: int = 2,
    options: BulkheadOptions | None = None,
    events: EventBus | None = None,
) -> Bulkhead:
    return Bulkhead(
        "db",
        options or BulkheadOptions(),
        limit=FixedLimit(limit),
        clock=clock,
        events=events or quiet(),
    )


# -- the bound and the line -------------------------------------------------------------------


async def test_at_most_limit_in_flight_and_the_line_is_served_in_order(
    virtual_clock: VirtualClock,
) -> None:
    bulkhead = bulkhead_for(virtual_clock, limit=2)
    started: list[tuple[int, float]] = []

    async def caller(n: int) -> None:
        async with bulkhead.acquire():
            started.append((n, virtual_clock.monotonic()))
            await virtual_clock.sleep(0.1)

    await asyncio.gather(*(caller(n) for n in range(5)))
    assert started == [(0, 0.0), (1, 0.0), (2, 0.1), (3, 0.1), (4, 0.2)]
    stats = bulkhead.stats
    assert (stats.in_flight, stats.waiting, stats.admitted, stats.shed) == (0, 0, 5, 0)


async def test_a_newcomer_never_passes_the_line(virtual_clock: VirtualClock) -> None:
    bulkhead = bulkhead_for(virtual_clock, limit=1)
    order: list[str] = []
    holder = bulkhead.acquire()
    await holder.__aenter__()

    async def caller(name: str) -> None:
        async with bulkhead.acquire():
            order.append(name)

    first = asyncio.create_task(caller("first"))
    await asyncio.sleep(0)
    await holder.__aexit__(None, None, None)  # the permit is handed to "first" ...
    late = asyncio.create_task(caller("late"))  # ... before "late" comes
    await asyncio.gather(first, late)
    assert order == ["first", "late"]


class Watched(Bulkhead):
    """A bulkhead that checks its bound at the moment of every admission: each time its count
    of calls in flight grows, the count must be within the limit of that moment."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.admissions: list[tuple[int, int]] = []
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    @property  # type: ignore[override]
    def _in_flight(self) -> int:
        return int(self.__dict__.get("_watched", 0))

    @_in_flight.setter
    def _in_flight(self, value: int) -> None:
        if value > self.__dict__.get("_watched", 0):
            self.admissions.append((value, self._limit))
        self.__dict__["_watched"] = value


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_never_more_than_the_limit_in_flight_under_1000_concurrent_callers(
    virtual_clock: VirtualClock, seed: int
) -> None:
    """The limit moves (AIMD, with drops and slow calls at random) while 1,000 callers press
    on it: at every admission the calls in flight are within the limit of that moment."""
    rng = random.Random(seed)
    options = AIMDLimitOptions(initial_limit=10, min_limit=1, max_limit=40, timeout=0.05)
    bulkhead = Watched(
        "db",
        BulkheadOptions(max_waiting=1000, max_wait=1000.0),
        limit=AIMDLimit(options),
        clock=virtual_clock,
        events=quiet(),
    )
    running = 0
    peak = 0

    async def dependency() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await virtual_clock.sleep(rng.choice([0.01, 0.02, 0.1]))
            if rng.random() < 0.2:
                raise ConnectionResetError("reset")
        finally:
            running -= 1

    async def caller() -> str:
        try:
            await bulkhead.call(dependency)
        except ConnectionResetError:
            return "failed"
        return "ok"

    outcomes = await asyncio.gather(*(caller() for _ in range(1000)))
    assert len(bulkhead.admissions) == 1000
    assert all(in_flight <= limit for in_flight, limit in bulkhead.admissions)
    assert len({limit for _, limit in bulkhead.admissions}) > 5  # the limit did move
    assert 10 < peak <= 40  # and was used, never past its maximum
    stats = bulkhead.stats
    assert (stats.in_flight, stats.waiting, stats.admitted, stats.shed) == (0, 0, 1000, 0)
    assert stats.failed == outcomes.count("failed") > 0


async def test_a_full_line_sheds_at_once_with_its_reason(
    virtual_clock: VirtualClock, event_recorder: EventRecorder, recording_bus: EventBus
) -> None:
    options = BulkheadOptions(max_waiting=2, max_wait=5.0)
    bulkhead = bulkhead_for(virtual_clock, limit=1, options=options, events=recording_bus)
    dependency = Dependency(virtual_clock, latency=1.0)
    calls = [asyncio.create_task(bulkhead.call(dependency)) for _ in range(3)]
    await asyncio.sleep(0)
    assert (bulkhead.stats.in_flight, bulkhead.stats.waiting) == (1, 2)
    with pytest.raises(BulkheadFullError) as raised:
        await bulkhead.call(dependency)
    assert virtual_clock.monotonic() == 0.0  # at once
    error = raised.value
    assert (error.name, error.reason) == ("db", "full")
    assert str(error) == (
        "'db' shed the call (full): 1 calls in flight (limit 1) and 2 callers waiting "
        "(max_waiting 2)"
    )
    assert not isinstance(error, TimeoutError)
    (event,) = event_recorder.named("shed", "bulkhead")
    assert dict(event.attributes) == {
        "bulkhead": "db",
        "reason": "full",
        "in_flight": 1,
        "waiting": 2,
        "limit": 1,
    }
    with pytest.raises(BulkheadFullError):
        await bulkhead.call(dependency)
    assert await asyncio.gather(*calls) == ["ok"] * 3
    assert (bulkhead.stats.shed_full, bulkhead.stats.shed, dependency.calls) == (2, 2, 3)


async def test_no_line_at_all_sheds_whoever_finds_every_permit_taken(
    virtual_clock: VirtualClock,
) -> None:
    bulkhead = bulkhead_for(virtual_clock, limit=1, options=BulkheadOptions(max_waiting=0))
    dependency = Dependency(virtual_clock, latency=1.0)
    first = asyncio.create_task(bulkhead.call(dependency))
    await asyncio.sleep(0)
    with pytest.raises(BulkheadFullError):
        await bulkhead.call(dependency)
    assert await first == "ok"
    assert await bulkhead.call(dependency) == "ok"  # a free permit, no line needed


async def test_a_caller_waits_max_wait_at_most_then_is_shed_not_timed_out(
    virtual_clock: VirtualClock, event_recorder: EventRecorder, recording_bus: EventBus
) -> None:
    options = BulkheadOptions(max_waiting=10, max_wait=0.25)
    bulkhead = bulkhead_for(virtual_clock, limit=1, options=options, events=recording_bus)
    dependency = Dependency(virtual_clock, latency=1.0)
    first = asyncio.create_task(bulkhead.call(dependency))
    await asyncio.sleep(0)
    waiting = asyncio.create_task(bulkhead.call(dependency))
    await asyncio.sleep(0)
    # One watchdog keeps the deadlines of every caller in line, named after the bulkhead.
    assert "Bulkhead db.watchdog" in {task.get_name() for task in asyncio.all_tasks()}
    with pytest.raises(BulkheadDeadlineError) as raised:
        await bulkhead.call(dependency)
    with pytest.raises(BulkheadDeadlineError):
        await waiting
    assert virtual_clock.monotonic() == 0.25
    assert not isinstance(raised.value, TimeoutError)
    assert raised.value.reason == "deadline"
    assert str(raised.value) == (
        "'db' shed the call (deadline): no permit within max_wait (0.25s); 1 calls in flight "
        "(limit 1)"
    )
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__
    assert [e.attributes["reason"] for e in event_recorder.named("shed")] == ["deadline"] * 2
    stats = bulkhead.stats
    assert (stats.waiting, stats.shed_deadline, stats.in_flight) == (0, 2, 1)
    assert (stats.shed, stats.shed_full, stats.shed_throttled, stats.admitted) == (2, 0, 0, 1)
    assert await first == "ok"
    assert (bulkhead.stats.in_flight, dependency.calls) == (0, 1)


async def test_a_permit_that_comes_as_the_deadline_passes_is_kept(
    virtual_clock: VirtualClock,
) -> None:
    """The holder ends exactly at the waiter's deadline, and is woken first: the waiter has
    been handed the permit when its deadline cancels it, and it keeps the permit."""
    bulkhead = bulkhead_for(virtual_clock, limit=1, options=BulkheadOptions(max_wait=1.0))
    dependency = Dependency(virtual_clock, latency=1.0)
    first = asyncio.create_task(bulkhead.call(dependency))
    await asyncio.sleep(0)
    assert await bulkhead.call(dependency) == "ok"
    assert await first == "ok"
    assert virtual_clock.monotonic() == 2.0
    stats = bulkhead.stats
    assert (stats.admitted, stats.shed, stats.in_flight, stats.waiting) == (2, 0, 0, 0)


# -- every permit back -------------------------------------------------------------------------


async def test_every_permit_comes_back_on_every_path(virtual_clock: VirtualClock) -> None:
    bulkhead = bulkhead_for(virtual_clock, limit=1)

    def sync_raise() -> None:
        raise ValueError("raised before any await")

    async def async_raise() -> None:
        await virtual_clock.sleep(0.1)
        raise KeyError("raised after an await")

    with pytest.raises(ValueError, match="before any await"):
        await bulkhead.call(sync_raise)  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        await bulkhead.call(async_raise)
    with pytest.raises(RuntimeError):
        async with bulkhead.acquire():
            raise RuntimeError("in the block")
    for _ in range(2):
        running = asyncio.create_task(bulkhead.call(virtual_clock.sleep, 10.0))
        await asyncio.sleep(0)
        assert bulkhead.stats.in_flight == 1
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    stats = bulkhead.stats
    assert (stats.in_flight, stats.admitted, stats.cancelled, stats.failed) == (0, 5, 2, 0)
    assert await bulkhead.call(virtual_clock.sleep, 0.0) is None  # the one permit is free


async def test_a_caller_cancelled_in_line_leaves_it_and_the_permit_goes_on(
    virtual_clock: VirtualClock,
) -> None:
    bulkhead = bulkhead_for(virtual_clock, limit=1)
    dependency = Dependency(virtual_clock, latency=1.0)
    first = asyncio.create_task(bulkhead.call(dependency))
    await asyncio.sleep(0)
    doomed = asyncio.create_task(bulkhead.call(dependency))
    third = asyncio.create_task(bulkhead.call(dependency))
    await asyncio.sleep(0)
    assert bulkhead.stats.waiting == 2
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert bulkhead.stats.waiting == 1
    assert await asyncio.gather(first, third) == ["ok", "ok"]
    assert virtual_clock.monotonic() == 2.0  # third went second: doomed never ran
    stats = bulkhead.stats
    assert (dependency.calls, stats.admitted, stats.in_flight, stats.waiting) == (2, 2, 0, 0)


async def test_a_caller_cancelled_once_handed_a_permit_hands_it_on(
    virtual_clock: VirtualClock,
) -> None:
    bulkhead = bulkhead_for(virtual_clock, limit=1)
    dependency = Dependency(virtual_clock, latency=1.0)
    holder = bulkhead.acquire()
    await holder.__aenter__()
    doomed = asyncio.create_task(bulkhead.call(dependency))
    third = asyncio.create_task(bulkhead.call(dependency))
    await asyncio.sleep(0)
    await holder.__aexit__(None, None, None)  # the permit goes to doomed ...
    doomed.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert await third == "ok"
    stats = bulkhead.stats
    assert (dependency.calls, stats.admitted, stats.in_flight, stats.waiting) == (1, 2, 0, 0)


async def test_a_permit_is_entered_once_at_a_time(virtual_clock: VirtualClock) -> None:
    bulkhead = bulkhead_for(virtual_clock)
    permit = bulkhead.acquire()
    async with permit:
        with pytest.raises(
            RuntimeError, match=r"^a permit is entered once: call bulkhead.acquire\(\) again$"
        ):
            await permit.__aenter__()
    assert bulkhead.stats.in_flight == 0
    async with permit:  # once it ended, it may run another call
        assert bulkhead.stats.in_flight == 1


# -- what the limit hears ----------------------------------------------------------------------


class Recorder:
    """A limit that keeps every sample and answers what the test sets."""

    def __init__(self, answer: object = 3) -> None:
        self.answer = answer
        self.samples: list[Sample] = []

    @property
    def limit(self) -> int:
        return self.answer  # type: ignore[return-value]

    def on_sample(self, sample: Sample) -> None:
        self.samples.append(sample)


async def test_the_limit_hears_latency_from_admission_and_only_the_dependencys_faults(
    virtual_clock: VirtualClock,
) -> None:
    limit = Recorder(answer=1)
    bulkhead = Bulkhead("db", limit=limit, clock=virtual_clock, events=quiet())
    dependency = Dependency(virtual_clock, latency=0.5)
    first = asyncio.create_task(bulkhead.call(dependency))
    await asyncio.sleep(0)
    assert await bulkhead.call(dependency) == "ok"  # waited 0.5 s in line, then took 0.5 s
    await first
    assert [(s.time, s.latency, s.in_flight, s.dropped) for s in limit.samples] == [
        (0.5, 0.5, 1, False),
        (1.0, 0.5, 1, False),
    ]
    for error, dropped in [
        (ConnectionRefusedError("refused"), True),
        (TimeoutError("slow"), True),
        (ValueError("the caller's"), False),
        (PoolTimeoutError("resilient's own queue"), False),
    ]:
        dependency.fault = error
        with pytest.raises(type(error)):
            await bulkhead.call(dependency)
        assert limit.samples[-1].dropped is dropped
    assert bulkhead.stats.failed == 2
    cancelled = asyncio.create_task(bulkhead.call(dependency))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    assert len(limit.samples) == 6  # a cancelled call is no sample


async def test_a_healthy_dependency_under_a_long_line_never_sheds_nor_loses_its_limit(
    virtual_clock: VirtualClock, event_recorder: EventRecorder, recording_bus: EventBus
) -> None:
    """1,000 callers at once before 20 permits: the last waits 2.5 s in line, five times the
    AIMD timeout; measured from arrival, every late call would be a drop. Measured from
    admission, none is, and the Gradient2 limit (whose windows would see a growing latency)
    never falls either."""
    for limit in (
        AIMDLimit(AIMDLimitOptions(initial_limit=20, min_limit=1, max_limit=20, timeout=0.5)),
        Gradient2Limit(Gradient2LimitOptions(initial_limit=20, min_limit=1, max_limit=20)),
    ):
        bulkhead = Bulkhead(
            "db",
            BulkheadOptions(max_waiting=1000, max_wait=60.0),
            limit=limit,
            clock=virtual_clock,
            events=recording_bus,
        )
        dependency = Dependency(virtual_clock, latency=0.05)
        dependency.bulkhead = bulkhead
        load = Load(bulkhead, dependency)
        await asyncio.gather(*(load.one() for _ in range(1000)))
        assert load.outcomes == {"ok": 1000}
        assert bulkhead.stats.limit == 20
        assert dependency.over_limit == []
    assert event_recorder.named("limit_changed") == []
    assert event_recorder.named("shed") == []
    assert virtual_clock.monotonic() == pytest.approx(5.0)  # 2 x 50 rounds of 50 ms


async def test_a_change_of_the_limit_is_an_event_and_widens_the_door_at_once(
    virtual_clock: VirtualClock, event_recorder: EventRecorder, recording_bus: EventBus
) -> None:
    limit = Recorder(answer=1)
    bulkhead = Bulkhead("db", limit=limit, clock=virtual_clock, events=recording_bus)
    dependency = Dependency(virtual_clock, latency=1.0)
    calls = [asyncio.create_task(bulkhead.call(dependency)) for _ in range(4)]
    await asyncio.sleep(0)
    limit.answer = 3  # heard after the first call ends: two more admitted with its permit
    await asyncio.gather(*calls)
    assert virtual_clock.monotonic() == 2.0
    (event,) = event_recorder.named("limit_changed", "bulkhead")
    assert dict(event.attributes) == {
        "bulkhead": "db",
        "previous": 1,
        "limit": 3,
        "latency": 1.0,
        "dropped": False,
    }
    assert event.time == 1.0


@pytest.mark.parametrize("answer", [0, -1, True, 2.0, "3", None, 2**31])
async def test_a_limit_that_answers_garbage_is_logged_and_changes_nothing(
    virtual_clock: VirtualClock, caplog: pytest.LogCaptureFixture, answer: object
) -> None:
    limit = Recorder(answer=2)
    bulkhead = Bulkhead("db", limit=limit, clock=virtual_clock, events=quiet())
    limit.answer = answer
    with caplog.at_level(logging.ERROR, "resilient.bulkhead"):
        assert await bulkhead.call(virtual_clock.sleep, 0.1) is None
    assert "could not be recorded" in caplog.text
    assert {record.name for record in caplog.records} == {"resilient.bulkhead"}
    assert {r.getMessage() for r in caplog.records} == {
        "bulkhead 'db': a call's outcome could not be recorded"
    }
    assert "Bulkhead.limit.limit must be an int >= 1 and <= 2147483647" in caplog.text
    stats = bulkhead.stats
    assert (stats.limit, stats.in_flight) == (2, 0)


async def test_a_limit_that_raises_is_logged_and_the_permit_still_comes_back(
    virtual_clock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Recorder):
        def on_sample(self, sample: Sample) -> None:
            raise ZeroDivisionError("a bug in a custom limit")

    bulkhead = Bulkhead("db", limit=Broken(answer=1), clock=virtual_clock, events=quiet())
    # The caller's own error is what it sees.
    with caplog.at_level(logging.ERROR, "resilient.bulkhead"), pytest.raises(KeyError):
        async with bulkhead.acquire():
            raise KeyError("the caller's")
    assert "ZeroDivisionError" in caplog.text
    assert bulkhead.stats.in_flight == 0


# -- with a throttle ---------------------------------------------------------------------------


async def test_a_throttle_in_front_sheds_locally_and_hears_only_admitted_calls(
    virtual_clock: VirtualClock, event_recorder: EventRecorder, recording_bus: EventBus
) -> None:
    throttle = AdaptiveThrottle(
        "db", random=random.Random(3), clock=virtual_clock, events=recording_bus
    )
    bulkhead = Bulkhead(
        "db",
        BulkheadOptions(max_waiting=0),
        limit=FixedLimit(1),
        throttle=throttle,
        clock=virtual_clock,
        events=recording_bus,
    )
    dependency = Dependency(virtual_clock, latency=0.1)
    assert await bulkhead.call(dependency) == "ok"
    assert (throttle.stats.requests, throttle.stats.accepts) == (1, 1)
    busy = asyncio.create_task(bulkhead.call(dependency))
    await asyncio.sleep(0)
    with pytest.raises(BulkheadFullError):
        await bulkhead.call(dependency)
    await busy
    assert (throttle.stats.requests, throttle.stats.accepts) == (2, 2)  # the shed one: nothing
    dependency.fault = ConnectionRefusedError("overloaded")
    outcomes: list[str] = []
    for _ in range(200):
        try:
            await bulkhead.call(dependency)
        except ConnectionRefusedError:
            outcomes.append("refused")
        except ThrottledError as error:
            outcomes.append(error.reason)
    assert outcomes.count("throttled") > 150  # the dependency saw few of them
    assert dependency.calls == 2 + outcomes.count("refused")
    stats = bulkhead.stats
    assert stats.shed_throttled == outcomes.count("throttled")
    assert stats.failed == outcomes.count("refused")
    assert stats.shed == stats.shed_full + stats.shed_throttled == 1 + stats.shed_throttled
    shed_reasons = {e.attributes["reason"] for e in event_recorder.named("shed", "bulkhead")}
    assert shed_reasons == {"full", "throttled"}
    assert event_recorder.named("throttling", "bulkhead.throttle")


async def test_a_cancelled_call_tells_the_throttle_nothing(virtual_clock: VirtualClock) -> None:
    throttle = AdaptiveThrottle("db", clock=virtual_clock, events=quiet())
    bulkhead = Bulkhead("db", throttle=throttle, clock=virtual_clock, events=quiet())
    task = asyncio.create_task(bulkhead.call(virtual_clock.sleep, 1.0))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert (throttle.stats.requests, bulkhead.stats.in_flight) == (0, 0)


# -- the rest ----------------------------------------------------------------------------------


async def test_call_passes_arguments_and_the_result(virtual_clock: VirtualClock) -> None:
    bulkhead = Bulkhead("db", clock=virtual_clock, events=quiet())

    async def add(a: int, b: int = 0) -> int:
        return a + b

    assert await bulkhead.call(add, 2, b=3) == 5
    assert bulkhead.stats.limit == 25  # FixedLimit(25) when no limit is given
    assert repr(bulkhead) == "Bulkhead('db', in_flight=0, waiting=0, limit=25)"


def test_shed_errors_are_one_family_and_cross_a_process_boundary() -> None:
    import pickle

    for cls in (BulkheadFullError, BulkheadDeadlineError, ThrottledError):
        error = cls("db", "why", "in detail")
        assert isinstance(error, LoadShedError)
        copy = pickle.loads(pickle.dumps(error))
        assert (type(copy), copy.name, copy.reason, copy.detail) == (cls, "db", "why", "in detail")
        assert str(copy) == "'db' shed the call (why): in detail"
    assert str(LoadShedError("db", "full")) == "'db' shed the call (full)"


def test_each_event_has_its_name_source_and_severity() -> None:
    from resilient.bulkhead import (
        BULKHEAD_EVENT_SOURCE,
        THROTTLE_EVENT_SOURCE,
        CallShed,
        LimitChanged,
        ThrottleStarted,
        ThrottleStopped,
    )
    from resilient.events import Severity

    assert (BULKHEAD_EVENT_SOURCE, THROTTLE_EVENT_SOURCE) == ("bulkhead", "bulkhead.throttle")
    assert [(cls.NAME, cls.SEVERITY) for cls in (CallShed, LimitChanged)] == [
        ("shed", Severity.INFO),  # thousands a second under overload: shedding is its job
        ("limit_changed", Severity.INFO),
    ]
    assert [(cls.NAME, cls.SEVERITY) for cls in (ThrottleStarted, ThrottleStopped)] == [
        ("throttling", Severity.WARNING),
        ("unthrottled", Severity.INFO),
    ]


async def test_stats_are_a_frozen_snapshot(virtual_clock: VirtualClock) -> None:
    import dataclasses

    bulkhead = Bulkhead("db", clock=virtual_clock, events=quiet())
    stats = bulkhead.stats
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.in_flight = 3  # type: ignore[misc]
    assert not hasattr(stats, "__dict__")
    await bulkhead.call(virtual_clock.sleep, 0.0)
    assert stats.admitted == 0  # a snapshot: the call after it does not change it


async def test_with_a_throttle_every_caller_takes_the_full_path_and_is_counted(
    virtual_clock: VirtualClock,
) -> None:
    throttle = AdaptiveThrottle("db", clock=virtual_clock, events=quiet())
    bulkhead = Bulkhead(
        "db", limit=FixedLimit(3), throttle=throttle, clock=virtual_clock, events=quiet()
    )
    dependency = Dependency(virtual_clock, latency=1.0)
    calls = [asyncio.create_task(bulkhead.call(dependency)) for _ in range(4)]
    await asyncio.sleep(0)
    stats = bulkhead.stats
    assert (stats.in_flight, stats.waiting, stats.admitted) == (3, 1, 3)
    await asyncio.gather(*calls)
    stats = bulkhead.stats
    assert (stats.in_flight, stats.waiting, stats.admitted) == (0, 0, 4)
    assert virtual_clock.monotonic() == 2.0


def test_event_attributes_are_slotted_mappings() -> None:
    from resilient.bulkhead import CallShed, LimitChanged, ThrottleStarted, ThrottleStopped

    for attributes, items in [
        (
            CallShed("db", "full", 1, 2, 3),
            {"bulkhead": "db", "reason": "full", "in_flight": 1, "waiting": 2, "limit": 3},
        ),
        (
            LimitChanged("db", 1, 2, 0.5, False),
            {"bulkhead": "db", "previous": 1, "limit": 2, "latency": 0.5, "dropped": False},
        ),
        (
            ThrottleStarted("api", 0.25, 3, 1),
            {"throttle": "api", "probability": 0.25, "requests": 3, "accepts": 1},
        ),
        (ThrottleStopped("api", 0, 0), {"throttle": "api", "requests": 0, "accepts": 0}),
    ]:
        assert attributes == items  # a mapping's equality, with a plain dict
        assert not hasattr(attributes, "__dict__")
