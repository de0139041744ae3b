"""ConnectGate in exact words and exact numbers: every message a caller or a log reader sees,
each refusal's reason and retry time, the jittered backoff drawn from a known number, what a
recovery is and is not, and the gate's counters (mutation survivors of pool/_gate).

Every test runs in virtual time.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from resilient.breaker import BreakerOptions, CircuitBreaker
from resilient.clock import VirtualClock
from resilient.errors import (
    ArgumentValueError,
    ConfigurationError,
    ConnectRefusedError,
)
from resilient.events import EventBus, EventRecorder
from resilient.pool import ConnectGate, GateOptions, GateStats, shared_gate
from resilient.ratelimit import Rate
from tests.resilient.pool_world import Fixed

EXACT = GateOptions(backoff_jitter=0.0)


def quiet() -> EventBus:
    return EventBus(log_when_unobserved=False)


def gate_for(clock: VirtualClock, options: GateOptions = EXACT, **kwargs: object) -> ConnectGate:
    kwargs.setdefault("events", quiet())
    return ConnectGate("db:5432", options, clock=clock, **kwargs)  # type: ignore[arg-type]


async def ok() -> str:
    return "ok"


async def refused() -> None:
    raise ConnectionRefusedError("refused")


async def test_bad_arguments_are_named_in_exact_words(virtual_clock: VirtualClock) -> None:
    gate = gate_for(virtual_clock)
    with pytest.raises(ArgumentValueError) as raised:
        await gate.connect(ok, timeout=-1)
    assert str(raised.value) == (
        "ConnectGate.connect(timeout) must be a finite number of seconds >= 0, got -1"
    )
    with pytest.raises(ArgumentValueError) as raised:
        gate.lost(math.nan)
    assert (
        str(raised.value)
        == "ConnectGate.lost(opened_at) must be a finite number of seconds, got nan"
    )


async def test_the_gate_says_what_it_holds(virtual_clock: VirtualClock) -> None:
    gate = gate_for(virtual_clock)
    assert repr(gate) == "ConnectGate('db:5432', connecting=0, waiting=0, failures=0)"
    assert gate.stats == GateStats(0, 0, 0, 0, 0, 0)
    assert not hasattr(gate.stats, "__dict__")


async def test_a_backoff_is_drawn_within_the_jitter_from_the_random_source(
    virtual_clock: VirtualClock,
) -> None:
    gate = gate_for(virtual_clock, GateOptions(backoff_jitter=0.2))
    gate._random = Fixed(0.75)  # type: ignore[assignment]
    with pytest.raises(ConnectionRefusedError):
        await gate.connect(refused)
    assert gate.backoff_left == pytest.approx(1.0 * (1 + 0.2 * 0.5))  # 2U - 1 = 0.5
    gate._random = Fixed(0.0)  # type: ignore[assignment]
    await virtual_clock.sleep(2.0)
    with pytest.raises(ConnectionRefusedError):
        await gate.connect(refused)
    assert gate.backoff_left == pytest.approx(1.6 * (1 - 0.2))


async def test_no_initial_backoff_stays_none_however_many_failures(
    virtual_clock: VirtualClock,
) -> None:
    breaker = CircuitBreaker(
        "b", BreakerOptions(failure_threshold=10**6), clock=virtual_clock, events=quiet()
    )
    gate = gate_for(
        virtual_clock, GateOptions(backoff_initial=0.0, backoff_max=10.0), breaker=breaker
    )
    for _ in range(1600):  # 1.6 ** 1511 overflows a float
        with pytest.raises(ConnectionRefusedError):
            await gate.connect(refused)
    assert gate.backoff_left == 0.0


async def test_each_refusal_says_why_and_when(virtual_clock: VirtualClock) -> None:
    rated = gate_for(virtual_clock, GateOptions(connect_rate=Rate(10, 1.0), max_connecting=9))
    assert await rated.connect(ok) == "ok"
    with pytest.raises(ConnectRefusedError) as raised:
        await rated.connect(ok, timeout=0.05)
    assert (raised.value.reason, raised.value.retry_after) == ("connect rate 10/1s", 0.1)
    assert rated.stats.refused == 1
    with pytest.raises(ConnectRefusedError):
        await rated.connect(ok, timeout=0.0)
    assert rated.stats.refused == 2

    breaker = CircuitBreaker(
        "b", BreakerOptions(failure_threshold=1, reset_timeout=0.5), clock=virtual_clock,
        events=quiet(),
    )  # fmt: skip
    opened = gate_for(virtual_clock, breaker=breaker)
    with pytest.raises(ConnectionRefusedError):
        await opened.connect(refused)
    with pytest.raises(ConnectRefusedError) as raised:
        await opened.connect(ok, timeout=0.1)
    assert (raised.value.reason, raised.value.retry_after) == ("circuit open", 0.5)


async def test_a_caller_behind_a_held_probe_is_refused_at_its_deadline_without_a_time(
    virtual_clock: VirtualClock,
) -> None:
    breaker = CircuitBreaker(
        "b", BreakerOptions(failure_threshold=1, reset_timeout=0.5), clock=virtual_clock,
        events=quiet(),
    )  # fmt: skip
    gate = gate_for(virtual_clock, GateOptions(backoff_initial=0.0), breaker=breaker)
    with pytest.raises(ConnectionRefusedError):
        await gate.connect(refused)
    await virtual_clock.sleep(0.5)
    probe = breaker.try_acquire()  # the requests to the destination hold its one probe
    assert probe is not None
    with pytest.raises(ConnectRefusedError) as raised:
        await gate.connect(ok, timeout=0.35)
    assert (raised.value.reason, raised.value.retry_after) == ("circuit open", None)
    assert virtual_clock.monotonic() == pytest.approx(0.85)
    probe.succeeded()


async def test_the_head_of_the_line_looks_again_soon_after_a_shared_probe_succeeds(
    virtual_clock: VirtualClock,
) -> None:
    breaker = CircuitBreaker(
        "b", BreakerOptions(failure_threshold=1, reset_timeout=0.5), clock=virtual_clock,
        events=quiet(),
    )  # fmt: skip
    gate = gate_for(virtual_clock, GateOptions(backoff_initial=0.0), breaker=breaker)
    with pytest.raises(ConnectionRefusedError):
        await gate.connect(refused)
    await virtual_clock.sleep(0.5)
    probe = breaker.try_acquire()
    assert probe is not None
    started: list[float] = []

    async def open_connection() -> str:
        started.append(virtual_clock.monotonic())
        return "ok"

    waiting = asyncio.create_task(gate.connect(open_connection))
    await virtual_clock.sleep(0.25)
    probe.succeeded()  # the breaker closes; nothing of the gate's wakes its line
    assert await waiting == "ok"
    assert 0.75 <= started[0] <= 0.85 + 1e-9  # within one look-again interval (0.1 s)


async def test_closing_the_gate_refuses_its_waiting_callers_at_once_saying_so(
    virtual_clock: VirtualClock,
) -> None:
    gate = gate_for(virtual_clock, GateOptions(max_connecting=1))

    async def slow() -> str:
        await virtual_clock.sleep(10.0)
        return "slow"

    first = asyncio.create_task(gate.connect(slow))
    await asyncio.sleep(0)
    second = asyncio.create_task(gate.connect(ok))
    await asyncio.sleep(0)
    assert gate.waiting == 1
    closing = asyncio.create_task(gate.aclose())
    with pytest.raises(ConnectRefusedError) as raised:
        await second
    assert raised.value.reason == "gate closed"
    assert virtual_clock.monotonic() == 0.0
    assert await first == "slow"
    await closing


async def test_a_timeout_of_the_connect_itself_counts_only_when_named_a_failure(
    virtual_clock: VirtualClock,
) -> None:
    class ClientError(Exception):
        pass

    gate = gate_for(virtual_clock, GateOptions(failures=(ClientError,)))

    async def own_timeout() -> None:
        raise TimeoutError("the caller's own timeout inside its connect")

    with pytest.raises(TimeoutError):
        await gate.connect(own_timeout)
    assert gate.failures == 0  # not the gate's connect_timeout, not a named failure


async def test_a_healthy_connect_is_no_recovery_and_says_nothing(
    virtual_clock: VirtualClock,
) -> None:
    bus, recorder = quiet(), EventRecorder()
    bus.subscribe(recorder)
    gate = gate_for(virtual_clock, events=bus)
    await gate.connect(ok)
    await virtual_clock.sleep(10.0)
    assert gate.failures == 0
    assert recorder.named("recovered") == []
    assert gate.breaker.stats.successes == 1


@pytest.mark.parametrize(("window", "failures_at_once"), [(0.0, 0), (0.5, 1)])
async def test_a_recovery_waits_for_the_churn_window_only_when_there_is_one(
    virtual_clock: VirtualClock, window: float, failures_at_once: int
) -> None:
    gate = gate_for(virtual_clock, GateOptions(backoff_jitter=0.0, churn_window=window))
    with pytest.raises(ConnectionRefusedError):
        await gate.connect(refused)
    await virtual_clock.sleep(1.0)
    await gate.connect(ok)
    assert gate._failures == failures_at_once  # no proof needed without a window
    assert gate.breaker.stats.cancelled == failures_at_once
    await virtual_clock.sleep(window)
    assert gate.failures == 0


async def test_a_reconnect_loop_trips_the_breaker_as_lost_connections(
    virtual_clock: VirtualClock,
) -> None:
    bus, recorder = quiet(), EventRecorder()
    bus.subscribe(recorder)
    gate = gate_for(virtual_clock, events=bus)
    for _ in range(5):
        opened_at = virtual_clock.monotonic()
        await gate.connect(ok)
        await virtual_clock.sleep(0.01)
        gate.lost(opened_at)
    [opened] = recorder.named("opened")
    assert opened.attributes["reason"] == "ConsecutiveFailures(5) tripped on ConnectionResetError"


async def test_a_shared_gate_asked_with_other_options_says_both(
    virtual_clock: VirtualClock,
) -> None:
    gate = shared_gate("words:1", EXACT)
    with pytest.raises(ConfigurationError) as raised:
        shared_gate("words:1", GateOptions(max_connecting=3))
    assert str(raised.value) == (
        f"shared_gate('words:1'): its gate was made with {EXACT}, asked again with "
        f"{GateOptions(max_connecting=3)}"
    )
    assert gate.destination == "words:1"


async def test_the_gates_timer_task_is_named_for_it(virtual_clock: VirtualClock) -> None:
    gate = gate_for(virtual_clock, GateOptions(max_connecting=1))

    async def slow() -> str:
        await virtual_clock.sleep(1.0)
        return "slow"

    first = asyncio.create_task(gate.connect(slow))
    await asyncio.sleep(0)
    names = {task.get_name() for task in asyncio.all_tasks()}
    assert "ConnectGate('db:5432').watchdog" in names
    assert await first == "slow"


async def test_the_gates_own_breaker_is_named_for_its_destination(
    virtual_clock: VirtualClock,
) -> None:
    assert gate_for(virtual_clock).breaker.name == "connect db:5432"


async def test_a_caller_behind_others_is_refused_at_its_deadline_saying_so(
    virtual_clock: VirtualClock,
) -> None:
    gate = gate_for(virtual_clock, GateOptions(max_connecting=1))
    hang = asyncio.Event()

    async def hanging() -> str:
        await hang.wait()
        return "late"

    attempt = asyncio.create_task(gate.connect(hanging))
    head = asyncio.create_task(gate.connect(ok, timeout=10.0))
    await asyncio.sleep(0)
    with pytest.raises(ConnectRefusedError) as raised:
        await gate.connect(ok, timeout=0.25)
    assert str(raised.value) == (
        "no connection to 'db:5432' attempted: waiting behind earlier callers"
    )
    assert (raised.value.reason, raised.value.retry_after) == (
        "waiting behind earlier callers",
        None,
    )
    assert virtual_clock.monotonic() == 0.25
    hang.set()
    assert await attempt == "late"
    assert await head == "ok"


async def test_a_caller_whose_deadline_is_the_end_of_the_backoff_waits_for_it(
    virtual_clock: VirtualClock,
) -> None:
    gate = gate_for(virtual_clock, GateOptions(backoff_initial=1.0, backoff_jitter=0.0))
    with pytest.raises(ConnectionRefusedError):
        await gate.connect(refused)
    assert gate.backoff_left == 1.0
    assert await gate.connect(ok, timeout=1.0) == "ok"  # an attempt may start at its deadline
    assert virtual_clock.monotonic() == 1.0
    assert gate.stats.refused == 0


async def test_closing_the_gate_the_instant_its_head_leaves_refuses_everyone_left(
    virtual_clock: VirtualClock,
) -> None:
    """The caller behind the head was just woken when the gate closes: the close does not
    trip over the wake-up it already has, and refuses it as it refuses the callers still
    asleep and every caller after the close: a closed gate starts no attempt."""
    gate = gate_for(virtual_clock, GateOptions(max_connecting=1))
    hang = asyncio.Event()

    async def hanging() -> str:
        await hang.wait()
        return "late"

    attempt = asyncio.create_task(gate.connect(hanging))
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(gate.connect(ok)) for _ in range(3)]
    await asyncio.sleep(0)
    assert gate.waiting == 3
    waiters[0].cancel()
    await asyncio.sleep(0)  # the head left and woke the next, which has not run yet
    hang.set()
    await gate.aclose()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    for refused in results[1:]:
        assert isinstance(refused, ConnectRefusedError)
        assert refused.reason == "gate closed"
    assert await attempt == "late"
    with pytest.raises(ConnectRefusedError) as late:  # a caller after the close
        await gate.connect(ok)
    assert late.value.reason == "gate closed"
    assert str(late.value) == str(results[1])


async def test_two_closes_of_a_gate_both_end_when_its_attempt_does(
    virtual_clock: VirtualClock,
) -> None:
    gate = gate_for(virtual_clock)

    async def hanging() -> str:
        await virtual_clock.sleep(1.0)
        return "done"

    attempt = asyncio.create_task(gate.connect(hanging))
    await asyncio.sleep(0)
    closes = [asyncio.create_task(gate.aclose()) for _ in range(2)]
    await asyncio.gather(*closes)
    assert virtual_clock.monotonic() == 1.0
    assert await attempt == "done"
