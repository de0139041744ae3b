"""ConnectGate: the rate, the cap on attempts in progress, gRPC's backoff, the breaker, churn,
deadlines, and nothing a caller passes or does counted against the destination.

Every test runs in virtual time (an autojumping :class:`VirtualClock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
from typing import Any

import pytest

from resilient.breaker import BreakerOptions, BreakerState, CircuitBreaker
from resilient.clock import VirtualClock
from resilient.errors import (
    ArgumentTypeError,
    ArgumentValueError,
    ConfigurationError,
    ConnectRefusedError,
)
from resilient.events import EventBus, EventRecorder
from resilient.pool import (
    DEFAULT_GATE_OPTIONS,
    ConnectGate,
    GateOptions,
    shared_gate,
)
from resilient.ratelimit import Rate

EXACT = GateOptions(backoff_jitter=0.0)
"""The default gate with an exact backoff schedule."""
FREE = GateOptions(connect_rate=Rate(1_000_000, 1.0, burst=1000), max_connecting=1000)
"""A gate that does not pace a small test."""


def quiet() -> EventBus:
    return EventBus(log_when_unobserved=False)


def recorded() -> tuple[EventBus, EventRecorder]:
    bus, recorder = quiet(), EventRecorder()
    bus.subscribe(recorder)
    return bus, recorder


class Destination:
    """What the gate connects to: records when each attempt starts and ends; fails, hangs or
    takes time on demand."""

    def __init__(self, clock: VirtualClock, *, takes: float = 0.0) -> None:
        self.clock = clock
        self.takes = takes
        self.starts: list[float] = []
        self.in_progress = 0
        self.most_in_progress = 0
        self.error: BaseException | None = None

    async def open(self) -> str:
        self.starts.append(self.clock.monotonic())
        self.in_progress += 1
        self.most_in_progress = max(self.most_in_progress, self.in_progress)
        try:
            if self.takes:
                await self.clock.sleep(self.takes)
            if self.error is not None:
                raise self.error
            return f"connection {len(self.starts)}"
        finally:
            self.in_progress -= 1


def gate_for(clock: VirtualClock, options: GateOptions = EXACT, **kwargs: Any) -> ConnectGate:
    kwargs.setdefault("events", quiet())
    return ConnectGate("db:5432", options, clock=clock, **kwargs)


# -- pace ------------------------------------------------------------------------------------


async def test_attempts_never_exceed_the_rate_in_any_window(virtual_clock: VirtualClock) -> None:
    gate = gate_for(virtual_clock, GateOptions(max_connecting=100))
    destination = Destination(virtual_clock)
    results = await asyncio.gather(*(gate.connect(destination.open) for _ in range(40)))
    assert len(results) == 40
    starts = destination.starts
    assert starts[:3] == [0.0, 0.0, 0.0]  # limit 10/s plus a burst of 2: 3 at once
    for i, start in enumerate(starts):
        in_window = [s for s in starts[i:] if s < start + 1.0]
        assert len(in_window) <= 12  # GCRA: at most limit + burst in any period
    assert starts[-1] == pytest.approx(3.7)  # then one every 100 ms: no slower either
    assert gate.stats.attempts == gate.stats.connects == 40
    assert gate.stats.gated == 37


async def test_no_more_than_max_connecting_attempts_run_at_once(
    virtual_clock: VirtualClock,
) -> None:
    gate = gate_for(virtual_clock, GateOptions(connect_rate=FREE.connect_rate))
    destination = Destination(virtual_clock, takes=1.0)
    await asyncio.gather(*(gate.connect(destination.open) for _ in range(6)))
    assert destination.most_in_progress == 2
    assert destination.starts == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]
    assert gate.connecting == 0


async def test_callers_are_served_first_come_first_served(virtual_clock: VirtualClock) -> None:
    gate = gate_for(virtual_clock, GateOptions(max_connecting=1, connect_rate=FREE.connect_rate))
    order: list[int] = []

    async def caller(n: int) -> None:
        async def open_connection() -> int:
            order.append(n)
            await virtual_clock.sleep(0.1)
            return n

        assert await gate.connect(open_connection) == n

    tasks = []
    for n in range(8):
        tasks.append(asyncio.create_task(caller(n)))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == list(range(8))


# -- backoff and the breaker -----------------------------------------------------------------


async def test_failures_back_off_as_grpc_does(virtual_clock: VirtualClock) -> None:
    breaker = CircuitBreaker(
        "b", BreakerOptions(failure_threshold=100), clock=virtual_clock, events=quiet()
    )
    gate = gate_for(
        virtual_clock, GateOptions(backoff_jitter=0.0, backoff_max=5.0), breaker=breaker
    )
    destination = Destination(virtual_clock)
    destination.error = ConnectionRefusedError("refused")
    for _ in range(6):
        with pytest.raises(ConnectionRefusedError):
            await gate.connect(destination.open)
    starts = destination.starts
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(starts)]
    assert gaps == [1.0, 1.6, 2.56, 4.096, 5.0]  # x1.6 each, capped at backoff_max
    assert gate.failures == 6
    assert gate.stats.failures == 6


async def test_a_success_resets_the_backoff_and_says_the_destination_recovered(
    virtual_clock: VirtualClock,
) -> None:
    bus, recorder = recorded()
    gate = gate_for(virtual_clock, events=bus)
    destination = Destination(virtual_clock)
    destination.error = ConnectionResetError("reset")
    for _ in range(2):
        with pytest.raises(ConnectionResetError):
            await gate.connect(destination.open)
    failed = recorder.named("connect_failed")
    assert [dict(event.attributes) for event in failed] == [
        {"destination": "db:5432", "error": "ConnectionResetError: reset", "failures": 1,
         "backoff": 1.0},
        {"destination": "db:5432", "error": "ConnectionResetError: reset", "failures": 2,
         "backoff": 1.6},
    ]  # fmt: skip
    destination.error = None
    assert await gate.connect(destination.open) == "connection 3"
    assert destination.starts[-1] == pytest.approx(2.6)
    assert gate.failures == 2  # not a recovery yet: a reconnect loop succeeds too
    assert recorder.named("recovered") == []
    await virtual_clock.sleep(5.0)  # the connection outlived the churn window
    assert gate.failures == 0
    assert gate.backoff_left == 0.0
    assert dict(recorder.named("recovered")[0].attributes) == {
        "destination": "db:5432",
        "failures": 2,
    }
    assert {event.source for event in recorder.events} == {"pool.gate"}
    assert await gate.connect(destination.open) == "connection 4"
    assert destination.starts[-1] == pytest.approx(7.6)


async def test_without_churn_detection_a_success_is_a_recovery_at_once(
    virtual_clock: VirtualClock,
) -> None:
    gate = gate_for(virtual_clock, GateOptions(backoff_jitter=0.0, churn_window=0.0))
    destination = Destination(virtual_clock)
    destination.error = ConnectionResetError("reset")
    with pytest.raises(ConnectionResetError):
        await gate.connect(destination.open)
    destination.error = None
    await gate.connect(destination.open)
    assert gate.failures == 0
    assert gate.backoff_left == 0.0


async def test_jittered_backoffs_stay_within_twenty_percent(virtual_clock: VirtualClock) -> None:
    gate = gate_for(virtual_clock, DEFAULT_GATE_OPTIONS)
    destination = Destination(virtual_clock)
    destination.error = OSError("down")
    with pytest.raises(OSError, match="down"):
        await gate.connect(destination.open)
    assert 0.8 <= gate.backoff_left <= 1.2


async def test_backoffs_of_a_thousand_gates_that_failed_together_disperse(
    virtual_clock: VirtualClock,
) -> None:
    """gRPC: "backoffs started at the same time disperse". 1,000 gates fail at one instant;
    their next attempts may start spread over 0.8 to 1.2 s: in 400 one-millisecond slots,
    about 2.5 per slot by chance. No slot may hold more than chance allows (Poisson(2.5): more
    than 12 in a slot has a probability under 1e-5 per slot)."""

    async def refused() -> None:
        raise ConnectionRefusedError

    gates = [gate_for(virtual_clock, DEFAULT_GATE_OPTIONS) for _ in range(1000)]
    for gate in gates:
        with pytest.raises(ConnectionRefusedError):
            await gate.connect(refused)
    slots: dict[int, int] = {}
    for gate in gates:
        slot = math.floor(gate.backoff_left * 1000)
        slots[slot] = slots.get(slot, 0) + 1
    assert max(slots.values()) <= 12
    assert len(slots) >= 300  # spread over most of the 400 slots, not a few


async def test_the_breaker_stops_connecting_while_the_destination_keeps_failing(
    virtual_clock: VirtualClock,
) -> None:
    gate = gate_for(virtual_clock)
    destination = Destination(virtual_clock)
    destination.error = ConnectionRefusedError("refused")
    for _ in range(5):
        with pytest.raises(ConnectionRefusedError):
            await gate.connect(destination.open)
    assert gate.breaker.state is BreakerState.OPEN
    started = virtual_clock.monotonic()
    with pytest.raises(ConnectRefusedError) as refused:
        await gate.connect(destination.open, timeout=1.0)
    assert virtual_clock.monotonic() == started  # refused at once: 30 s cannot fit in 1 s
    assert refused.value.reason == "circuit open"
    assert refused.value.retry_after == pytest.approx(30.0)
    assert refused.value.destination == "db:5432"
    assert len(destination.starts) == 5
    destination.error = None
    assert await gate.connect(destination.open) == "connection 6"  # no timeout: it waits
    assert virtual_clock.monotonic() == pytest.approx(started + 30.0)
    assert gate.breaker.state is BreakerState.HALF_OPEN  # until the connection proves itself
    await virtual_clock.sleep(5.0)
    assert gate.failures == 0
    assert gate.breaker.state is BreakerState.CLOSED


async def test_a_caller_refused_before_its_deadline_is_told_why_and_when(
    virtual_clock: VirtualClock,
) -> None:
    bus, recorder = recorded()
    gate = gate_for(virtual_clock, events=bus)
    destination = Destination(virtual_clock)
    destination.error = OSError("down")
    with pytest.raises(OSError, match="down"):
        await gate.connect(destination.open)
    with pytest.raises(ConnectRefusedError) as refused:
        await gate.connect(destination.open, timeout=0.5)
    assert virtual_clock.monotonic() == 0.0
    assert str(refused.value) == (
        "no connection to 'db:5432' attempted: backoff after 1 failures; an attempt could "
        "start in 1.000s"
    )
    assert gate.stats.refused == 1
    assert dict(recorder.named("refused")[0].attributes) == {
        "destination": "db:5432",
        "reason": "backoff after 1 failures",
    }


async def test_a_caller_waiting_on_busy_attempts_is_refused_at_its_deadline(
    virtual_clock: VirtualClock,
) -> None:
    gate = gate_for(virtual_clock, GateOptions(max_connecting=1))
    slow = Destination(virtual_clock, takes=10.0)
    first = asyncio.create_task(gate.connect(slow.open))
    await asyncio.sleep(0)
    with pytest.raises(ConnectRefusedError) as refused:
        await gate.connect(slow.open, timeout=2.0)
    assert virtual_clock.monotonic() == pytest.approx(2.0)
    assert refused.value.reason == "1 connect attempts in progress"
    assert refused.value.retry_after is None
    assert gate.waiting == 0
    assert await first == "connection 1"


async def test_an_attempt_past_its_connect_timeout_is_a_failure(
    virtual_clock: VirtualClock,
) -> None:
    gate = gate_for(virtual_clock)
    hanging = Destination(virtual_clock, takes=math.inf)
    with pytest.raises(TimeoutError):
        await gate.connect(hanging.open)
    assert virtual_clock.monotonic() == pytest.approx(20.0)
    assert gate.failures == 1
    assert gate.connecting == 0


# -- what is not the destination's fault ------------------------------------------------------


async def test_the_callers_own_error_counts_as_nothing(virtual_clock: VirtualClock) -> None:
    gate = gate_for(virtual_clock)

    async def buggy() -> None:
        raise ValueError("a bug in the caller's connect function")

    for _ in range(10):
        with pytest.raises(ValueError, match="a bug"):
            await gate.connect(buggy)
    assert gate.failures == 0
    assert gate.backoff_left == 0.0
    assert gate.breaker.state is BreakerState.CLOSED
    assert gate.stats.failures == 0


async def test_a_client_error_named_a_failure_counts(virtual_clock: VirtualClock) -> None:
    class ClientConnectionError(Exception):  # like redis-py's: no OSError
        pass

    gate = gate_for(virtual_clock, GateOptions(failures=(OSError, ClientConnectionError)))

    async def refused() -> None:
        raise ClientConnectionError

    with pytest.raises(ClientConnectionError):
        await gate.connect(refused)
    assert gate.failures == 1


async def test_a_cancelled_attempt_frees_its_slot_and_counts_as_nothing(
    virtual_clock: VirtualClock,
) -> None:
    gate = gate_for(virtual_clock, GateOptions(max_connecting=1))
    slow = Destination(virtual_clock, takes=10.0)
    task = asyncio.create_task(gate.connect(slow.open))
    await asyncio.sleep(0)
    assert gate.connecting == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gate.connecting == 0
    assert gate.failures == 0
    assert gate.breaker.stats.cancelled == 0 or gate.breaker.state is BreakerState.CLOSED
    fast = Destination(virtual_clock)
    assert await gate.connect(fast.open, timeout=0.0) == "connection 1"


async def test_a_caller_cancelled_in_line_leaves_it_and_the_next_goes_on(
    virtual_clock: VirtualClock,
) -> None:
    gate = gate_for(virtual_clock, GateOptions(max_connecting=1, connect_rate=FREE.connect_rate))
    slow = Destination(virtual_clock, takes=1.0)
    first = asyncio.create_task(gate.connect(slow.open))
    await asyncio.sleep(0)
    second = asyncio.create_task(gate.connect(slow.open))
    third = asyncio.create_task(gate.connect(slow.open))
    await asyncio.sleep(0)
    assert gate.waiting == 2
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert gate.waiting == 1
    assert await first == "connection 1"
    assert await third == "connection 2"
    assert slow.starts == [0.0, 1.0]


# -- churn -----------------------------------------------------------------------------------


async def test_a_connection_lost_soon_after_opening_is_a_failure_of_the_destination(
    virtual_clock: VirtualClock,
) -> None:
    bus, recorder = recorded()
    gate = gate_for(virtual_clock, events=bus)
    destination = Destination(virtual_clock)
    for n in range(5):  # the incident's loop: connect, lose it at once, connect again
        opened_at = virtual_clock.monotonic()
        await gate.connect(destination.open)
        await virtual_clock.sleep(0.01)
        assert gate.lost(opened_at) is True
        assert gate.failures == n + 1
    assert gate.stats.churned == 5
    assert gate.breaker.state is BreakerState.OPEN  # the reconnect loop tripped the gate
    with pytest.raises(ConnectRefusedError):
        await gate.connect(destination.open, timeout=1.0)
    churned = recorder.named("churned")
    assert len(churned) == 5
    assert churned[0].attributes["lived"] == pytest.approx(0.01)


async def test_a_connection_that_lived_past_the_churn_window_is_no_failure(
    virtual_clock: VirtualClock,
) -> None:
    gate = gate_for(virtual_clock)
    destination = Destination(virtual_clock)
    await gate.connect(destination.open)
    await virtual_clock.sleep(5.0)
    assert gate.lost(0.0) is False
    assert gate.failures == 0
    assert gate.stats.churned == 0
    assert gate_for(virtual_clock, GateOptions(churn_window=0.0)).lost(0.0) is False


# -- sharing -----------------------------------------------------------------------------------


async def test_one_gate_per_destination_is_shared(virtual_clock: VirtualClock) -> None:
    first = shared_gate("shared:1", EXACT, clock=virtual_clock)
    assert shared_gate("shared:1", EXACT, clock=virtual_clock) is first
    assert shared_gate("shared:2", EXACT, clock=virtual_clock) is not first
    with pytest.raises(ConfigurationError, match=r"shared_gate\('shared:1'\)"):
        shared_gate("shared:1", GateOptions(max_connecting=3), clock=virtual_clock)


# -- what a caller passes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda gate: gate.connect("open"), ArgumentTypeError,
         "ConnectGate.connect(open_connection) must be an async callable, got 'open'"),
        (lambda gate: gate.connect(Destination.open, timeout=math.nan), ArgumentValueError,
         "ConnectGate.connect(timeout)"),
        (lambda gate: gate.connect(Destination.open, timeout=-1), ArgumentValueError,
         "ConnectGate.connect(timeout)"),
        (lambda gate: gate.connect(Destination.open, timeout=True), ArgumentTypeError,
         "ConnectGate.connect(timeout)"),
    ],
)  # fmt: skip
async def test_bad_arguments_are_refused_before_the_gate_changes(
    virtual_clock: VirtualClock, call: Any, error: type[Exception], message: str
) -> None:
    gate = gate_for(virtual_clock)
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        await call(gate)
    assert (gate.connecting, gate.waiting, gate.failures) == (0, 0, 0)
    assert gate.stats.attempts == 0


@pytest.mark.parametrize("opened_at", ["0", math.nan, math.inf, None, True])
def test_lost_refuses_a_time_that_is_no_time(opened_at: Any) -> None:
    gate = gate_for(VirtualClock())
    with pytest.raises((ArgumentTypeError, ArgumentValueError), match=r"ConnectGate\.lost"):
        gate.lost(opened_at)
    assert gate.failures == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"destination": 5}, "ConnectGate.destination must be"),
        ({"options": {}}, "ConnectGate.options must be a GateOptions"),
        ({"breaker": "b"}, "ConnectGate.breaker must be a CircuitBreaker or None"),
        ({"clock": 1}, "ConnectGate.clock must be a Clock"),
        ({"events": None}, "ConnectGate.events must be an EventBus"),
    ],
)
def test_the_constructor_names_the_bad_argument(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"destination": "d", **kwargs}
    destination = arguments.pop("destination")
    with pytest.raises((ArgumentTypeError, ArgumentValueError), match=message):
        ConnectGate(destination, **arguments)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_connecting": 0}, "GateOptions.max_connecting"),
        ({"connect_rate": "10/s"}, "GateOptions.connect_rate must be a Rate"),
        ({"backoff_multiplier": 0.5}, "GateOptions.backoff_multiplier"),
        ({"backoff_jitter": 1.5}, "GateOptions.backoff_jitter"),
        ({"backoff_initial": 10.0, "backoff_max": 5.0}, "GateOptions.backoff_initial must be <="),
        ({"failures": (OSError, "x")}, "GateOptions.failures must be a tuple of exception types"),
        ({"failures": [OSError]}, "GateOptions.failures must be a tuple of exception types"),
        ({"connect_timeout": 0}, "GateOptions.connect_timeout"),
    ],
)
def test_bad_gate_options_name_the_field(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises((ArgumentTypeError, ArgumentValueError), match=message):
        GateOptions(**kwargs)


async def test_a_random_mix_of_callers_never_breaks_a_bound(virtual_clock: VirtualClock) -> None:
    """Random outcomes, durations, deadlines and cancellations: at no instant more than
    ``max_connecting`` attempts run, and when all is over nothing is held."""
    rng = random.Random(7)
    gate = gate_for(virtual_clock, GateOptions(max_connecting=3, backoff_initial=0.05))
    running = 0
    most = 0

    async def open_connection() -> str:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await virtual_clock.sleep(rng.choice([0.0, 0.01, 0.2]))
            if rng.random() < 0.2:
                raise ConnectionResetError
            return "ok"
        finally:
            running -= 1

    async def caller() -> None:
        await virtual_clock.sleep(rng.random() * 5)
        timeout = rng.choice([None, 0.0, 0.1, 1.0])
        with contextlib.suppress(ConnectRefusedError, ConnectionResetError):
            await gate.connect(open_connection, timeout=timeout)

    tasks = [asyncio.create_task(caller()) for _ in range(300)]

    async def cancel(task: asyncio.Task[None]) -> None:
        await virtual_clock.sleep(rng.random() * 6)
        task.cancel()

    cancellers = [asyncio.create_task(cancel(task)) for task in rng.sample(tasks, 60)]
    await asyncio.gather(*tasks, *cancellers, return_exceptions=True)
    assert most <= 3
    assert (gate.connecting, gate.waiting) == (0, 0)


async def test_a_shared_gate_nobody_holds_is_forgotten_and_its_loop_with_it() -> None:
    import gc

    from resilient.pool import _gate as gate_module

    gate = shared_gate("forgotten:1", EXACT)
    assert shared_gate("forgotten:1", EXACT) is gate  # the same while held
    key = (asyncio.get_running_loop(), "forgotten:1")
    assert key in gate_module._SHARED
    del gate
    gc.collect()
    assert key not in gate_module._SHARED
