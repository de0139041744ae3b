"""CircuitBreaker's ways in and its modes, in virtual time: ``async with breaker``, ``@breaker``,
``isolate()``/``reset()``, metrics-only; the probe limit under 1,000 concurrent callers; a
caller's own mistakes never count against the dependency."""

from __future__ import annotations

import asyncio
import contextvars
import math
import pickle

import pytest

from resilient.breaker import (
    BreakerOptions,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
)
from resilient.clock import VirtualClock
from resilient.errors import ArgumentTypeError
from resilient.events import EventBus, EventRecorder


class Boom(Exception):
    pass


class Invalid(Exception):
    """The caller's own mistake (e.g. a 400 from the dependency)."""


async def ok() -> str:
    return "ok"


async def fail() -> str:
    raise Boom("down")


def make(clock: VirtualClock, bus: EventBus | None = None, **options: object) -> CircuitBreaker:
    settings = {"failure_threshold": 3, "reset_timeout": 10.0, **options}
    return CircuitBreaker(
        "dep",
        BreakerOptions(**settings),  # type: ignore[arg-type]
        clock=clock,
        events=bus or EventBus(log_when_unobserved=False),
    )


def recorded() -> tuple[EventBus, EventRecorder]:
    recorder = EventRecorder()
    bus = EventBus()
    bus.subscribe(recorder)
    return bus, recorder


def state_of(breaker: CircuitBreaker) -> BreakerState:
    return breaker.state


async def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.options.failure_threshold):
        with pytest.raises(Boom):
            await breaker.call(fail)


# -- async with breaker, @breaker ------------------------------------------------------------


async def test_async_with_breaker_is_one_call_and_refuses_when_open() -> None:
    clock = VirtualClock()
    breaker = make(clock, failure_threshold=2)
    async with breaker as permit:
        assert not permit.probe
    for _ in range(2):
        with pytest.raises(Boom):
            async with breaker:
                raise Boom
    assert state_of(breaker) is BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as refused:
        async with breaker:
            pytest.fail("an open circuit must not run the block")
    assert refused.value.retry_after == 10.0
    clock.advance(10.0)
    async with breaker as probe:
        assert probe.probe
    assert state_of(breaker) is BreakerState.CLOSED
    assert (breaker.stats.successes, breaker.stats.failures, breaker.stats.rejected) == (2, 2, 1)


async def test_async_with_blocks_of_one_breaker_nest_and_tasks_keep_their_own() -> None:
    clock = VirtualClock()
    breaker = make(clock, half_open_max_calls=2)
    await trip(breaker)
    clock.advance(10.0)

    async def nested() -> None:
        async with breaker as outer:
            async with breaker as inner:
                assert (outer.probe, inner.probe) == (True, True)
            assert state_of(breaker) is BreakerState.CLOSED  # the inner probe succeeded
            raise Boom  # the outer probe's outcome is stale now

    with pytest.raises(Boom):
        await nested()
    assert (state_of(breaker), breaker.stats.ignored) == (BreakerState.CLOSED, 1)
    await trip(breaker)
    clock.advance(10.0)
    entered = asyncio.Event()
    leave = asyncio.Event()

    async def slow_probe() -> None:
        async with breaker:
            entered.set()
            await leave.wait()

    task = asyncio.create_task(slow_probe())
    await entered.wait()
    async with breaker:  # the other slot, in this task
        pass
    assert state_of(breaker) is BreakerState.CLOSED
    leave.set()
    await task
    assert breaker.stats.ignored == 2  # the slow probe ended after the circuit closed


async def test_a_dump_of_the_context_names_the_breaker_whose_block_it_is_in() -> None:
    breaker = make(VirtualClock())
    async with breaker:
        names = [variable.name for variable in contextvars.copy_context()]
    assert "resilient.breaker dep" in names


async def test_a_cancelled_async_with_block_frees_its_probe_slot() -> None:
    clock = VirtualClock()
    breaker = make(clock)
    await trip(breaker)
    clock.advance(10.0)

    async def stuck() -> None:
        async with breaker:
            await asyncio.Event().wait()

    task = asyncio.create_task(stuck())
    await asyncio.sleep(0)
    assert not breaker.allows_call()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.allows_call()
    assert (breaker.stats.cancelled, state_of(breaker)) == (1, BreakerState.HALF_OPEN)


async def test_the_decorator_guards_an_async_function_and_keeps_its_name() -> None:
    clock = VirtualClock()
    breaker = make(clock, failure_threshold=1)

    @breaker
    async def fetch(key: str, *, suffix: str = "") -> str:
        """Fetch one key."""
        if key == "bad":
            raise Boom
        return key + suffix

    assert (fetch.__name__, fetch.__doc__) == ("fetch", "Fetch one key.")
    assert await fetch("a", suffix="!") == "a!"
    with pytest.raises(Boom):
        await fetch("bad")
    with pytest.raises(CircuitOpenError):
        await fetch("a")

    class Client:
        @breaker
        async def get(self) -> str:
            return "method"

    clock.advance(10.0)
    assert await Client().get() == "method"
    assert state_of(breaker) is BreakerState.CLOSED


def test_the_decorator_refuses_a_function_that_is_not_async() -> None:
    breaker = make(VirtualClock())

    def sync() -> None:
        return None

    with pytest.raises(ArgumentTypeError, match=r"^CircuitBreaker\('dep'\) decorates an async"):
        breaker(sync)  # type: ignore[arg-type]


# -- isolate and reset -----------------------------------------------------------------------


async def test_isolate_refuses_every_call_until_reset() -> None:
    clock = VirtualClock()
    bus, recorder = recorded()
    breaker = make(clock, bus)
    breaker.isolate()
    assert state_of(breaker) is BreakerState.ISOLATED
    assert (breaker.allows_call(), breaker.retry_after) == (False, math.inf)
    clock.advance(10**6)  # no reset timeout: still isolated
    with pytest.raises(CircuitOpenError) as refused:
        await breaker.call(ok)
    assert str(refused.value) == "circuit 'dep' is isolated; calls resume after reset()"
    assert refused.value.retry_after == math.inf
    assert breaker.try_acquire() is None
    assert breaker.stats.rejected == 2
    breaker.reset()
    assert state_of(breaker) is BreakerState.CLOSED
    assert await breaker.call(ok) == "ok"
    told = [(e.name, e.attributes["previous"], e.attributes["reason"]) for e in recorder.events]
    assert told == [
        ("isolated", "closed", "isolated by hand"),
        ("closed", "isolated", "reset by hand"),
    ]
    assert recorder.events[0].severity.name == "WARNING"
    copy = pickle.loads(pickle.dumps(refused.value))
    assert (copy.name, copy.state, copy.retry_after) == ("dep", BreakerState.ISOLATED, math.inf)


async def test_isolating_an_open_circuit_keeps_it_shut_past_its_timeout() -> None:
    clock = VirtualClock()
    breaker = make(clock)
    await trip(breaker)
    breaker.isolate("maintenance")
    clock.advance(30.0)
    assert state_of(breaker) is BreakerState.ISOLATED
    assert breaker.stats.trips == 1
    breaker.reset()
    assert (state_of(breaker), breaker.failure_count) == (BreakerState.CLOSED, 0)


async def test_reset_forgets_the_failures_counted() -> None:
    breaker = make(VirtualClock())
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.call(fail)
    breaker.reset()
    assert breaker.failure_count == 0
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.call(fail)
    assert state_of(breaker) is BreakerState.CLOSED


# -- metrics-only ------------------------------------------------------------------------------


async def test_metrics_only_never_refuses_but_counts_and_transitions_as_if_it_did() -> None:
    clock = VirtualClock()
    bus, recorder = recorded()
    breaker = make(clock, bus, metrics_only=True)
    enforcing = make(clock, None)
    calls = 0

    async def counted() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    for each in (breaker, enforcing):
        await trip(each)
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.allows_call()
    assert await breaker.call(counted) == "ok"  # would have been refused
    with pytest.raises(CircuitOpenError):
        await enforcing.call(counted)
    assert (calls, breaker.stats.rejected, enforcing.stats.rejected) == (1, 1, 1)
    assert breaker.stats.successes == enforcing.stats.successes == 0  # counted nowhere
    clock.advance(10.0)
    first = breaker.try_acquire()
    second = breaker.try_acquire()  # every slot taken: would be refused, let through
    assert first is not None
    assert second is not None
    assert (first.probe, second.probe, breaker.stats.rejected) == (True, False, 2)
    second.failed(Boom())  # says nothing: it would not have run
    assert state_of(breaker) is BreakerState.HALF_OPEN
    first.succeeded()
    assert state_of(breaker) is BreakerState.CLOSED
    assert [e.name for e in recorder.events] == ["opened", "half_opened", "closed"]
    breaker.isolate()
    assert await breaker.call(counted) == "ok"
    assert breaker.stats.rejected == 3
    # what it let through counts as rejected only: never as a success, failure or stale outcome
    assert (breaker.stats.successes, breaker.stats.ignored) == (1, 0)


# -- the probe limit, exactly, under 1,000 callers -------------------------------------------


@pytest.mark.parametrize("max_probes", [1, 7])
async def test_never_more_than_the_probe_limit_among_1000_concurrent_callers(
    max_probes: int,
) -> None:
    clock = VirtualClock(autojump=True)
    breaker = make(clock, half_open_max_calls=max_probes)
    await trip(breaker)
    clock.advance(10.0)
    running = most = 0
    release = asyncio.Event()

    async def probe() -> str:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        return "ok"

    async def caller(index: int) -> str:
        await clock.sleep((index % 10) / 1000)  # arriving over 10 ms, not at one instant
        return await breaker.call(probe)

    tasks = [asyncio.create_task(caller(index)) for index in range(1000)]
    await clock.sleep(0.02)
    assert (running, most) == (max_probes, max_probes)
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results.count("ok") == max_probes
    assert sum(isinstance(r, CircuitOpenError) for r in results) == 1000 - max_probes
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.stats.rejected == 1000 - max_probes


# -- a caller's own mistakes never count ------------------------------------------------------


async def test_a_call_the_caller_could_not_make_counts_as_nothing() -> None:
    breaker = make(VirtualClock(), failure_threshold=1)

    def not_async() -> int:
        return 3

    async def takes_one(value: int) -> int:
        return value

    with pytest.raises(TypeError):
        await breaker.call(takes_one)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        await breaker.call(not_async)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await breaker.call(None)  # type: ignore[arg-type]
    assert state_of(breaker) is BreakerState.CLOSED
    assert (breaker.stats.failures, breaker.stats.cancelled) == (0, 3)


async def test_an_excluded_exception_never_trips_even_under_load() -> None:
    breaker = make(VirtualClock(), failure_threshold=1, exclude=(Invalid,))

    async def rejects_input(value: int) -> int:
        raise Invalid(f"bad value {value}")

    results = await asyncio.gather(
        *(breaker.call(rejects_input, index) for index in range(1000)), return_exceptions=True
    )
    assert all(isinstance(result, Invalid) for result in results)
    assert (state_of(breaker), breaker.stats.successes) == (BreakerState.CLOSED, 1000)


async def test_calling_reports_like_async_with() -> None:
    clock = VirtualClock()
    breaker = make(clock, failure_threshold=1)
    async with breaker.calling() as permit:
        assert not permit.probe
    with pytest.raises(Boom):
        async with breaker.calling():
            raise Boom
    with pytest.raises(CircuitOpenError):
        async with breaker.calling():
            pass
    assert (breaker.stats.successes, breaker.stats.failures, breaker.stats.rejected) == (1, 1, 1)
