"""BoundedPool and ConnectGate against hostile callers and bad timing: what a caller passes
(a connect, close or check that misbehaves, a block that raises anything) never changes the
gate's or the pool's state for other callers nor leaks a place, and the bounds hold.

Every test runs in virtual time (an autojumping :class:`VirtualClock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient.breaker import BreakerOptions, CircuitBreaker
from resilient.clock import VirtualClock
from resilient.errors import (
    ConnectRefusedError,
    PoolClosedError,
    PoolExhaustedError,
    PoolTimeoutError,
)
from resilient.pool import (
    GATE_BREAKER_OPTIONS,
    BoundedPool,
    ConnectGate,
    GateOptions,
    PoolOptions,
)
from resilient.ratelimit import Rate
from tests.resilient.test_pool import FREE_GATE, Backend, closes_run, pool_for, quiet, settled


class Abort(BaseException):
    """A BaseException that is neither a cancellation nor KeyboardInterrupt/SystemExit (which
    asyncio re-raises out of the event loop): it takes the same paths through the pool."""


def assert_nothing_held(pool: BoundedPool[Any]) -> None:
    stats = pool.stats
    assert (stats.open, stats.in_use, stats.connecting, stats.waiting) == (
        stats.idle, 0, 0, 0,
    ), stats  # fmt: skip
    assert pool.gate.connecting == 0
    assert pool.gate.waiting == 0


# -- the check ---------------------------------------------------------------------------------


async def test_a_check_raising_a_base_exception_leaks_no_place(virtual_clock: VirtualClock) -> None:
    backend = Backend(virtual_clock)

    async def check(connection: int) -> bool:
        raise Abort

    pool = pool_for(backend, PoolOptions(max_size=1, check_after_idle=0.0), check=check)
    async with pool.acquire():
        pass
    with pytest.raises(Abort):
        async with pool.acquire():
            pass
    assert_nothing_held(pool)
    assert pool.stats.open == 0
    await closes_run()
    assert backend.closed == [1]
    await settled(pool, backend)


@pytest.mark.parametrize(
    "answer", [ValueError("a bug in check"), None, 1, "yes"], ids=["raises", "None", "1", "str"]
)
async def test_a_check_that_is_wrong_is_no_failure_of_the_destination(
    virtual_clock: VirtualClock, answer: object
) -> None:
    """A check that raises the caller's own error, or answers something other than a bool,
    is the caller's bug: the connection is not lent, but the destination is not blamed."""
    backend = Backend(virtual_clock)

    async def check(connection: int) -> bool:
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[return-value]

    pool = pool_for(backend, PoolOptions(check_after_idle=0.0), check=check)
    for _ in range(10):
        async with pool.acquire():
            pass
    assert pool.gate.failures == 0
    assert pool.gate.stats.churned == 0
    assert pool.gate.breaker.allows_call()
    await settled(pool, backend)


async def test_a_check_that_hangs_is_bounded_by_acquire_timeout(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)

    async def check(connection: int) -> bool:
        await asyncio.Event().wait()
        return True

    pool = pool_for(
        backend, PoolOptions(max_size=1, check_after_idle=0.0, acquire_timeout=2.0), check=check
    )
    async with pool.acquire():
        pass
    with pytest.raises(PoolTimeoutError):
        async with pool.acquire():
            pass
    assert_nothing_held(pool)
    assert pool.gate.failures == 0
    await settled(pool, backend)


# -- connect -----------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [Abort(), asyncio.CancelledError(), ValueError("bug")])
async def test_a_connect_raising_anything_not_a_fault_leaks_nothing_and_counts_nothing(
    virtual_clock: VirtualClock, error: BaseException
) -> None:
    backend = Backend(virtual_clock, takes=0.1)
    backend.error = error
    pool = pool_for(backend, PoolOptions(max_size=2))
    for _ in range(5):
        with pytest.raises(type(error)):
            async with pool.acquire():
                pass
    assert_nothing_held(pool)
    assert pool.gate.failures == 0
    assert pool.gate.stats.failures == 0
    backend.error = None
    async with pool.acquire():
        pass
    await settled(pool, backend)


async def test_a_connect_that_is_not_async_is_the_callers_error(
    virtual_clock: VirtualClock,
) -> None:
    pool: BoundedPool[Any] = BoundedPool(
        lambda: 42,  # type: ignore[arg-type,return-value]
        lambda connection: None,
        gate=ConnectGate("x", FREE_GATE, clock=virtual_clock, events=quiet()),
        clock=virtual_clock,
        events=quiet(),
    )
    for _ in range(3):
        with pytest.raises(TypeError):
            async with pool.acquire():
                pass
    assert_nothing_held(pool)
    assert pool.gate.failures == 0
    await pool.aclose()


# -- close -------------------------------------------------------------------------------------


async def test_aclose_does_not_hang_on_a_close_that_hangs(virtual_clock: VirtualClock) -> None:
    backend = Backend(virtual_clock)

    async def close(connection: int) -> None:
        await asyncio.Event().wait()

    pool = pool_for(backend)
    pool._close = close  # type: ignore[assignment]
    async with pool.acquire():
        pass
    await asyncio.wait_for(pool.aclose(), timeout=5.0)
    assert virtual_clock.monotonic() <= pool.gate.options.connect_timeout
    assert not pool._tasks


async def test_a_close_that_hangs_started_while_aclose_waits_is_bounded_too(
    virtual_clock: VirtualClock,
) -> None:
    """A connection given back while aclose() waits on another's close is closed within the
    same bound: aclose() waits for it, and no close runs on without its deadline."""
    backend = Backend(virtual_clock)

    async def close(connection: int) -> None:
        await asyncio.Event().wait()

    pool = pool_for(backend, PoolOptions(max_size=2))
    pool._close = close  # type: ignore[assignment]

    async def holds() -> None:
        async with pool.acquire():
            await virtual_clock.sleep(1.0)

    async with pool.acquire():
        holder = asyncio.create_task(holds())
        await asyncio.sleep(0)
    await virtual_clock.sleep(0.5)
    await pool.aclose()  # the idle one's close hangs; the lent one comes back meanwhile
    await holder
    await virtual_clock.sleep(2 * pool.gate.options.connect_timeout)
    assert not pool._tasks


async def test_aclose_called_again_waits_for_the_closes_of_connections_given_back(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)

    async def close(connection: int) -> None:
        await virtual_clock.sleep(1.0)
        await backend.close(connection)

    pool = pool_for(backend)
    pool._close = close  # type: ignore[assignment]
    lease = pool.acquire()
    await lease.__aenter__()
    await pool.aclose()
    await lease.__aexit__(None, None, None)  # closed now, in a task of the pool's
    await pool.aclose()
    assert backend.closed == [1]
    assert not pool._tasks


async def test_aclose_cancelled_still_closes_every_connection(
    virtual_clock: VirtualClock,
) -> None:
    """A shutdown that gives up on aclose() (cancels it, e.g. ``wait_for``) does not cancel
    the closes it started: every connection is still closed, once."""
    backend = Backend(virtual_clock)

    async def close(connection: int) -> None:
        await virtual_clock.sleep(1.0)
        await backend.close(connection)

    pool = pool_for(backend, PoolOptions(max_size=3))
    pool._close = close  # type: ignore[assignment]
    async with pool.acquire(), pool.acquire(), pool.acquire():
        pass
    closing = asyncio.create_task(pool.aclose())
    await asyncio.sleep(0)
    closing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await closing
    await virtual_clock.sleep(2.0)
    assert sorted(backend.closed) == [1, 2, 3]


async def test_a_close_that_raises_changes_nothing(virtual_clock: VirtualClock) -> None:
    backend = Backend(virtual_clock)

    def close(connection: int) -> None:
        raise RuntimeError("close is broken")

    pool = pool_for(backend, PoolOptions(max_size=1))
    pool._close = close  # type: ignore[assignment]
    for _ in range(3):
        with pytest.raises(KeyError):
            async with pool.acquire():
                raise KeyError
    async with pool.acquire():
        pass
    assert_nothing_held(pool)
    await pool.aclose()


async def test_a_close_raising_a_base_exception_still_hands_the_place_on(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)

    def close(connection: int) -> None:
        raise Abort

    pool = pool_for(backend, PoolOptions(max_size=1, acquire_timeout=5.0))
    pool._close = close  # type: ignore[assignment]
    got: list[float] = []

    async def waiter() -> None:
        async with pool.acquire():
            got.append(virtual_clock.monotonic())

    lease = pool.acquire()
    await lease.__aenter__()
    task = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    await virtual_clock.sleep(1.0)
    with pytest.raises(Abort):
        await lease.__aexit__(ValueError, ValueError(), None)
    await task
    assert got == [1.0]


# -- the waiting line --------------------------------------------------------------------------


async def test_a_newcomer_never_overtakes_a_waiter_handed_a_free_place(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock, takes=0.1)
    pool = pool_for(backend, PoolOptions(max_size=1))
    served: list[str] = []

    async def caller(name: str) -> None:
        async with pool.acquire():
            served.append(name)
            await virtual_clock.sleep(1.0)

    lease = pool.acquire()
    await lease.__aenter__()
    first = asyncio.create_task(caller("waited"))
    await asyncio.sleep(0)
    assert pool.stats.waiting == 1
    # The lent connection raises: its place is handed to the waiter; the same task asking
    # again at once (no await between) must queue behind it.
    await lease.__aexit__(ValueError, ValueError(), None)
    await caller("newcomer")
    await first
    assert served == ["waited", "newcomer"]
    await settled(pool, backend)


async def test_a_waiter_handed_a_free_place_is_never_refused_as_exhausted(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    pool = pool_for(backend, PoolOptions(max_size=1, max_waiting=1))
    outcomes: dict[str, str] = {}

    async def caller(name: str) -> None:
        try:
            async with pool.acquire():
                await virtual_clock.sleep(1.0)
            outcomes[name] = "served"
        except PoolExhaustedError:
            outcomes[name] = "exhausted"

    lease = pool.acquire()
    await lease.__aenter__()
    waited = asyncio.create_task(caller("waited"))
    await asyncio.sleep(0)
    # Callers arriving in the same instant as the release run before the waiter it woke.
    others = [asyncio.create_task(caller(f"new{n}")) for n in range(3)]
    await lease.__aexit__(ValueError, ValueError(), None)
    await asyncio.gather(waited, *others)
    assert outcomes["waited"] == "served"
    await settled(pool, backend)


async def test_a_caller_whose_check_failed_keeps_its_turn(virtual_clock: VirtualClock) -> None:
    """The connection failed its check while a later caller came to wait: the first caller
    opens the next connection, the later one waits for it."""
    backend = Backend(virtual_clock, takes=0.1)
    answers = [False]

    async def check(connection: int) -> bool:
        await virtual_clock.sleep(0.1)
        return answers.pop() if answers else True

    pool = pool_for(backend, PoolOptions(max_size=1, check_after_idle=0.0), check=check)
    async with pool.acquire():
        pass
    served: list[str] = []

    async def caller(name: str) -> None:
        async with pool.acquire():
            served.append(name)
            await virtual_clock.sleep(1.0)

    first = asyncio.create_task(caller("first"))
    await virtual_clock.sleep(0.05)  # first is in its check
    await caller("later")
    await first
    assert served == ["first", "later"]
    await settled(pool, backend)


async def test_a_connection_being_opened_when_the_pool_is_rebuilt_is_retired_too(
    virtual_clock: VirtualClock,
) -> None:
    """It was made with the configuration before the rebuild: the rebuild retires it as the
    others, not as one of the new configuration."""
    backend = Backend(virtual_clock, takes=1.0)
    made_with: dict[int, str] = {}

    async def old() -> int:
        connection = await backend.connect()
        made_with[connection] = "old"
        return connection

    async def new() -> int:
        connection = await backend.connect()
        made_with[connection] = "new"
        return connection

    pool = pool_for(backend, PoolOptions(max_size=2, housekeeping=1.0))
    pool._connect = old
    opening = asyncio.create_task(pool.acquire().__aenter__())
    await virtual_clock.sleep(0.5)
    pool.rebuild(new)
    connection = await opening
    pool._give_back(next(iter(pool._in_use)))
    await virtual_clock.sleep(5.0)  # housekeeping passes: every old connection retired
    await closes_run()
    assert made_with[connection] == "old"
    assert connection in backend.closed
    await settled(pool, backend)


@pytest.mark.xfail(
    strict=True,
    reason="left alone: a caller that went to the gate waits for its own connect; a connection "
    "given back meanwhile goes idle, and a later caller takes it",
)
async def test_a_caller_waiting_at_the_gate_gets_a_connection_given_back_first(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    gate = ConnectGate(
        "db", GateOptions(connect_rate=Rate(1, 1.0, burst=0)), clock=virtual_clock, events=quiet()
    )
    pool = pool_for(backend, PoolOptions(max_size=5), gate=gate)
    served: list[tuple[str, float]] = []

    async def caller(name: str, hold: float) -> None:
        async with pool.acquire():
            served.append((name, virtual_clock.monotonic()))
            await virtual_clock.sleep(hold)

    first = asyncio.create_task(caller("first", 0.1))
    await asyncio.sleep(0)
    second = asyncio.create_task(caller("second", 0.1))  # at the gate: next connect at 1.0
    await virtual_clock.sleep(0.5)  # first's connection is idle since 0.1
    await caller("later", 0.1)
    await asyncio.gather(first, second)
    assert [name for name, _ in served] == ["first", "second", "later"], served
    await settled(pool, backend)


# -- the gate ----------------------------------------------------------------------------------


async def test_an_attempt_past_connect_timeout_fails_whatever_failures_names(
    virtual_clock: VirtualClock,
) -> None:
    class ClientConnectionError(Exception):
        pass

    gate = ConnectGate(
        "db",
        GateOptions(connect_timeout=1.0, backoff_jitter=0, failures=(ClientConnectionError,)),
        clock=virtual_clock,
        events=quiet(),
    )

    async def hangs() -> None:
        await asyncio.Event().wait()

    with pytest.raises(TimeoutError):
        await gate.connect(hangs)
    assert gate.stats.failures == 1
    assert gate.failures == 1
    assert gate.connecting == 0


async def test_a_refusal_from_within_the_process_is_no_fault_of_the_destination(
    virtual_clock: VirtualClock,
) -> None:
    """A pool timeout or a gate refusal is an OSError (a TimeoutError, a ConnectionError), but
    it is the process queueing, not the destination failing: raised in a block, or by a
    connect that itself waits on another pool or gate, it does not count against the
    destination, at any concurrency."""
    backend = Backend(virtual_clock)
    inner = pool_for(Backend(virtual_clock), PoolOptions(max_size=1, acquire_timeout=0.5))
    outer = pool_for(backend, PoolOptions(max_size=50))

    async def caller() -> None:
        with contextlib.suppress(PoolTimeoutError):
            async with outer.acquire(), inner.acquire():
                await virtual_clock.sleep(1.0)

    await asyncio.gather(*(caller() for _ in range(20)))
    assert outer.gate.stats.churned == 0
    assert outer.gate.failures == 0

    slow = ConnectGate("inner", GateOptions(max_connecting=1), clock=virtual_clock, events=quiet())

    async def connect_through_another_gate() -> int:
        async def opens() -> int:
            await virtual_clock.sleep(1.0)
            return 1

        return await slow.connect(opens, timeout=0.5)

    gate = ConnectGate("outer", FREE_GATE, clock=virtual_clock, events=quiet())
    results = await asyncio.gather(
        *(gate.connect(connect_through_another_gate) for _ in range(20)), return_exceptions=True
    )
    assert any(isinstance(result, ConnectRefusedError) for result in results)
    assert gate.stats.failures == 0
    assert gate.breaker.allows_call()
    await outer.aclose()
    await inner.aclose()


async def test_many_callers_behind_max_connecting_never_trip_a_healthy_destination(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock, takes=0.5)
    gate = ConnectGate(
        "db",
        GateOptions(connect_rate=Rate(1000, 1.0, burst=1000), connect_timeout=1.0),
        clock=virtual_clock,
        events=quiet(),
    )
    pool = pool_for(backend, PoolOptions(max_size=500, acquire_timeout=60.0), gate=gate)

    async def caller() -> None:
        with contextlib.suppress(PoolTimeoutError):
            async with pool.acquire():
                await virtual_clock.sleep(0.1)

    await asyncio.gather(*(caller() for _ in range(300)))
    assert pool.stats.timeouts > 0  # queued in the process past acquire_timeout
    assert gate.stats.failures == 0
    assert gate.breaker.allows_call()
    assert gate.stats.connects >= 200
    await settled(pool, backend)


@pytest.mark.parametrize("multiplier", [1.6, 1e100])
async def test_a_backoff_that_would_overflow_stays_at_backoff_max(
    virtual_clock: VirtualClock, multiplier: float
) -> None:
    """A destination down long enough (1.6 ** 1511 overflows a float: 1,511 failures, 12.6
    hours of one probe every 30 s), or a huge multiplier, leaves the backoff at backoff_max:
    the gate neither raises OverflowError nor leaks the attempt's slot."""
    breaker = CircuitBreaker(
        "db", BreakerOptions(failure_threshold=10**6), clock=virtual_clock, events=quiet()
    )
    gate = ConnectGate(
        "db",
        GateOptions(
            connect_rate=Rate(1000, 1.0, burst=1000),
            backoff_multiplier=multiplier,
            backoff_jitter=0,
            backoff_initial=0.001,
            backoff_max=0.01,
        ),
        breaker=breaker,
        clock=virtual_clock,
        events=quiet(),
    )
    failures = 1600 if multiplier < 2 else 10

    async def refused() -> None:
        raise ConnectionRefusedError

    for _ in range(failures):
        with pytest.raises(ConnectionRefusedError):
            await gate.connect(refused)
    assert gate.connecting == 0
    assert gate.failures == failures
    assert gate.backoff_left <= 0.01


async def test_an_attempt_in_progress_keeps_its_connect_timeout_when_the_gate_closes(
    virtual_clock: VirtualClock,
) -> None:
    gate = ConnectGate("db", GateOptions(connect_timeout=1.0), clock=virtual_clock, events=quiet())

    async def hangs() -> None:
        await asyncio.Event().wait()

    attempt = asyncio.create_task(gate.connect(hangs))
    await asyncio.sleep(0)
    assert gate.connecting == 1
    await gate.aclose()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(attempt, timeout=5.0)
    assert gate.connecting == 0
    assert virtual_clock.monotonic() == 1.0


async def test_a_caller_arriving_while_the_gate_closes_keeps_its_deadlines(
    virtual_clock: VirtualClock,
) -> None:
    """The gate's timer task is stopped while a caller comes: the caller's waits still end
    (it was left waiting forever, its wake-up dropped with the stopped timer's)."""
    gate = ConnectGate(
        "db", GateOptions(connect_rate=Rate(1, 1.0, burst=0)), clock=virtual_clock, events=quiet()
    )

    async def opens() -> int:
        await virtual_clock.sleep(0.5)
        return 1

    assert await gate.connect(opens) == 1  # its connect_timeout keeps the timer task asleep
    closing = asyncio.create_task(gate.aclose())
    await asyncio.sleep(0)  # aclose() waits for the timer task it stopped
    late = asyncio.create_task(gate.connect(opens, timeout=5.0))  # waits 0.5 s for the rate
    await closing
    assert await asyncio.wait_for(late, timeout=5.0) == 1
    assert virtual_clock.monotonic() == pytest.approx(1.5)


async def test_closing_the_pool_takes_no_deadline_from_a_caller_still_acquiring(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)

    async def check(connection: int) -> bool:
        await asyncio.Event().wait()
        return True

    pool = pool_for(backend, PoolOptions(check_after_idle=0.0, acquire_timeout=2.0), check=check)
    async with pool.acquire():
        pass
    caller = asyncio.create_task(pool.acquire().__aenter__())
    await asyncio.sleep(0)  # in its check, which hangs
    await pool.aclose()
    with pytest.raises(PoolTimeoutError):
        await asyncio.wait_for(caller, timeout=5.0)
    assert virtual_clock.monotonic() == 2.0


async def test_a_gate_whose_breaker_is_shared_goes_on_once_anothers_probe_succeeds(
    virtual_clock: VirtualClock,
) -> None:
    """The destination's breaker, shared with the requests to it: while half-open, a request
    holds its one probe; once that probe succeeds, the callers waiting at the gate go on (the
    gate heard of nothing, as none of its attempts ended)."""
    breaker = CircuitBreaker(
        "db", BreakerOptions(failure_threshold=1, reset_timeout=1.0), clock=virtual_clock
    )
    gate = ConnectGate("db", breaker=breaker, clock=virtual_clock, events=quiet())
    breaker.acquire().failed(ConnectionResetError())  # a request failed: open for 1 s
    await virtual_clock.sleep(1.0)
    probe = breaker.acquire()  # a request probes: the gate must wait for its outcome

    async def opens() -> int:
        return 1

    waiting = asyncio.create_task(gate.connect(opens))
    await virtual_clock.sleep(0.5)
    probe.succeeded()  # closed again
    assert await asyncio.wait_for(waiting, timeout=5.0) == 1
    assert virtual_clock.monotonic() < 10.0


async def test_closing_the_gate_while_callers_wait_or_connect_leaks_nothing(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock, takes=1.0)
    gate = ConnectGate("db", GateOptions(max_connecting=1), clock=virtual_clock, events=quiet())
    pool = pool_for(backend, PoolOptions(max_size=5), gate=gate)

    async def caller() -> None:
        async with pool.acquire():
            await virtual_clock.sleep(0.1)

    tasks = [asyncio.create_task(caller()) for _ in range(5)]
    await asyncio.sleep(0)
    await gate.aclose()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(r is None or isinstance(r, ConnectRefusedError) for r in results), results
    assert_nothing_held(pool)
    await settled(pool, backend)


async def test_closing_the_pool_while_callers_wait_and_connect_leaks_nothing(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock, takes=1.0)
    pool = pool_for(backend, PoolOptions(max_size=3, min_size=2, warm_jitter=0.5))

    async def caller() -> None:
        async with pool.acquire():
            await virtual_clock.sleep(2.0)

    tasks = [asyncio.create_task(caller()) for _ in range(8)]
    await virtual_clock.sleep(0.7)
    await pool.aclose()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(r is None or isinstance(r, PoolClosedError) for r in results), results
    await closes_run()
    assert_nothing_held(pool)
    assert backend.open_count == 0
    assert not pool._tasks


# -- random programs ---------------------------------------------------------------------------


class Interrupt(BaseException):
    """What a caller's block raises for an "interrupt" step (as KeyboardInterrupt would)."""


class Watched:
    """A backend that checks the bounds at every step of every connect and close: attempts in
    progress, places within ``max_size``, a connection lent to one caller at a time and never
    after it raised, and close() called exactly once per connection."""

    def __init__(self, clock: VirtualClock, max_size: int, max_connecting: int) -> None:
        self.clock = clock
        self.max_size = max_size
        self.max_connecting = max_connecting
        self.pools: list[BoundedPool[int]] = []
        self.connect_mode = "ok"
        self.check_mode: object = True
        self.close_mode = "ok"
        self.connecting = 0
        self.attempts: list[float] = []
        self.opened = 0
        self.closed: list[int] = []
        self.held: set[int] = set()
        self.broken: set[int] = set()
        self.faults = 0
        self.violations: list[str] = []

    def bounds(self) -> None:
        assert self.connecting <= self.max_connecting
        for pool in self.pools:
            stats = pool.stats
            assert stats.open + stats.connecting == pool._size <= self.max_size
            assert pool._size + pool._reserved <= self.max_size
            assert stats.open == stats.idle + stats.in_use, stats
            assert pool._reserved >= 0

    async def connect(self) -> int:
        self.connecting += 1
        self.attempts.append(self.clock.monotonic())
        self.bounds()
        try:
            mode = self.connect_mode
            if mode == "hang":
                self.faults += 1  # past connect_timeout: the destination's
                await asyncio.Event().wait()
            await self.clock.sleep(0.05)
            if mode == "refused":
                self.faults += 1
                raise ConnectionRefusedError
            if mode == "bug":
                raise ValueError("a bug in connect")
            if mode == "interrupt":
                raise Interrupt
        finally:
            self.connecting -= 1
        self.opened += 1
        return self.opened

    async def check(self, connection: int) -> bool:
        self.bounds()
        mode = self.check_mode
        if mode == "hang":
            await asyncio.Event().wait()
        if mode == "bug":
            raise ValueError("a bug in check")
        if mode == "interrupt":
            raise Interrupt
        await asyncio.sleep(0)
        if mode is False:
            self.faults += 1  # the check says the destination broke it
        return mode  # type: ignore[return-value]

    async def close(self, connection: int) -> None:
        # Recorded, not asserted: the pool logs what a close raises and goes on.
        if connection in self.closed:
            self.violations.append(f"connection {connection} closed twice")
        if connection in self.held:
            self.violations.append(f"connection {connection} closed while lent")
        self.closed.append(connection)
        if self.close_mode == "raise":
            raise RuntimeError("close is broken")
        if self.close_mode == "hang":
            await asyncio.Event().wait()


STEPS = st.one_of(
    st.tuples(
        st.just("call"),
        st.sampled_from(["ok", "fault", "bug", "interrupt", "cancelled", "hang"]),
        st.floats(0, 2),
    ),
    st.tuples(st.just("cancel"), st.integers(0, 30), st.just(0.0)),
    st.tuples(st.just("sleep"), st.just(""), st.floats(0, 3)),
    st.tuples(st.just("connect"), st.sampled_from(["ok", "refused", "bug", "interrupt", "hang"]),
              st.just(0.0)),
    st.tuples(st.just("check"), st.sampled_from([True, False, None, "bug", "interrupt", "hang"]),
              st.just(0.0)),
    st.tuples(st.just("close"), st.sampled_from(["ok", "raise", "hang"]), st.just(0.0)),
    st.tuples(st.just("housekeep"), st.sampled_from(["", "rebuild"]), st.just(0.0)),
    st.tuples(st.just("aclose"), st.sampled_from(["pool", "gate"]), st.just(0.0)),
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(
    steps=st.lists(STEPS, max_size=40),
    max_size=st.integers(1, 4),
    max_connecting=st.integers(1, 3),
    max_waiting=st.integers(0, 5),
    min_size=st.integers(0, 2),
    pools=st.integers(1, 2),
)
def test_no_random_program_breaks_a_bound_or_leaks(
    steps: list[tuple[str, Any, float]],
    max_size: int,
    max_connecting: int,
    max_waiting: int,
    min_size: int,
    pools: int,
) -> None:
    """Random programs against one or two pools sharing one gate."""
    min_size = min(min_size, max_size)
    asyncio.run(_run_program(steps, max_size, max_connecting, max_waiting, min_size, pools))


async def _run_program(
    steps: list[tuple[str, Any, float]],
    max_size: int,
    max_connecting: int,
    max_waiting: int,
    min_size: int,
    pools: int,
) -> None:
    clock = VirtualClock(autojump=True)
    rate = Rate(5, 1.0, burst=1)
    gate = ConnectGate(
        "db",
        GateOptions(
            connect_rate=rate,
            max_connecting=max_connecting,
            connect_timeout=1.0,
            backoff_initial=0.1,
            backoff_max=1.0,  # an attempt may take the backoff: at most 1 s too
        ),
        clock=clock,
        events=quiet(),
    )
    backend = Watched(clock, max_size, max_connecting)
    options = PoolOptions(
        max_size=max_size,
        min_size=min_size,
        max_waiting=max_waiting,
        acquire_timeout=2.0,
        check_after_idle=0.2,
        housekeeping=1.0,
        idle_timeout=2.5,
        max_lifetime=4.0,
        warm_jitter=0.3,
    )
    backend.pools = [
        BoundedPool(
            backend.connect,
            backend.close,
            options,
            gate=gate,
            check=backend.check,
            clock=clock,
            events=quiet(),
        )
        for _ in range(pools)
    ]
    pool = backend.pools[0]
    callers: list[asyncio.Task[None]] = []

    async def caller(ending: str, hold: float) -> None:
        pool = backend.pools[int(hold * 10) % pools]
        async with pool.acquire() as connection:
            assert connection not in backend.held, f"{connection} lent twice"
            assert connection not in backend.broken, f"{connection} lent after it raised"
            assert connection not in backend.closed, f"{connection} lent after its close"
            backend.held.add(connection)
            backend.bounds()
            try:
                if ending == "hang":
                    await asyncio.Event().wait()
                await clock.sleep(hold)
                if ending == "ok":
                    return
                backend.broken.add(connection)
                if ending == "fault":
                    backend.faults += 1
                    raise ConnectionResetError
                if ending == "bug":
                    raise ValueError("a bug in the block")
                if ending == "interrupt":
                    raise Interrupt
                raise asyncio.CancelledError
            finally:
                backend.held.discard(connection)

    for kind, what, amount in steps:
        if kind == "call":
            callers.append(asyncio.create_task(caller(what, amount)))
            await asyncio.sleep(0)
        elif kind == "cancel":
            if callers:
                callers[what % len(callers)].cancel()
            await asyncio.sleep(0)
        elif kind == "sleep":
            await clock.sleep(amount)
        elif kind == "connect":
            backend.connect_mode = what
        elif kind == "check":
            backend.check_mode = what
        elif kind == "close":
            backend.close_mode = what
        elif kind == "aclose":
            closing = backend.pools[-1].aclose() if what == "pool" else gate.aclose()
            closer = asyncio.create_task(closing)  # type: ignore[arg-type]
            callers.append(closer)  # type: ignore[arg-type]
            await asyncio.sleep(0)
        elif what == "rebuild":
            pool.rebuild()
        else:
            pool.housekeep()
        backend.bounds()

    await clock.sleep(5.0)  # every acquire_timeout and connect_timeout has passed
    for task in callers:
        if not task.done() and not backend.held and backend.close_mode != "hang":
            raise AssertionError(
                f"a caller still waits after its acquire_timeout: {pool}, {gate}: {task}"
            )
        task.cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    backend.bounds()
    assert not backend.held
    if backend.faults == 0:
        assert gate.stats.failures == 0, gate.stats
        assert gate.stats.churned == 0, gate.stats
    # The connect rate: in any period, at most limit + burst attempts (on the gate's clock,
    # whole microseconds: 1.7109375 + 5 x 0.2 s falls a hair short of 2.7109375 in floats).
    times = [int(t * 1_000_000) for t in backend.attempts]
    for i, start in enumerate(times):
        within = [t for t in times[i:] if t < start + rate.period * 1_000_000]
        assert len(within) <= rate.limit + rate.burst, times

    for pool in backend.pools:
        await pool.aclose()
    assert gate.connecting == 0
    assert gate.waiting == 0
    await gate.aclose()
    for pool in backend.pools:
        stats = pool.stats
        assert (stats.open, stats.idle, stats.in_use, stats.connecting, stats.waiting) == (
            0, 0, 0, 0, 0,
        ), stats  # fmt: skip
        assert pool._reserved == 0
        assert not pool._tasks
        assert pool._housekeeper is None or pool._housekeeper.done()
        assert pool._deadlines._watchdog is None or pool._deadlines._watchdog.done()
    assert gate._deadlines._watchdog is None or gate._deadlines._watchdog.done()
    # every connection opened was closed exactly once, never while lent
    assert not backend.violations
    assert sorted(backend.closed) == list(range(1, backend.opened + 1))


# -- the adapters ------------------------------------------------------------------------------


@pytest.mark.real_server
@pytest.mark.parametrize("total", [0, None])
async def test_an_aiohttp_timeout_of_zero_is_no_timeout_at_the_gate_either(
    total: float | None,
) -> None:
    """aiohttp reads ``ClientTimeout(total=0)`` as no timeout; the gate must not read it as
    "refuse whoever has to wait"."""
    import aiohttp
    from aiohttp import web

    from resilient.aiohttp import GatedConnector

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    options = GateOptions(connect_rate=Rate(1000, 1.0, burst=100), max_connecting=1)
    try:
        connector = GatedConnector(options, force_close=True, events=quiet())
        timeout = aiohttp.ClientTimeout(total=total)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def get() -> str:
                async with session.get(f"http://127.0.0.1:{port}/") as response:
                    return await response.text()

            assert await asyncio.gather(*(get() for _ in range(5))) == ["hello"] * 5
    finally:
        await runner.cleanup()


@pytest.mark.real_server
async def test_an_aiohttp_request_refused_by_the_gate_says_so() -> None:
    """aiohttp wraps every ``OSError`` of a connect in its ``ClientOSError``: the gate's
    refusal reaches the caller as one, with the ConnectRefusedError as its cause."""
    import aiohttp

    from resilient.aiohttp import GatedConnector
    from resilient.pool import shared_gate

    with socket.socket() as probe:  # a free port nobody listens on: no request gets through
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = GateOptions(backoff_jitter=0.0, backoff_initial=0.0, connect_rate=Rate(99, 1.0))
    gate = shared_gate(f"127.0.0.1:{port}", options, events=quiet())
    for _ in range(GATE_BREAKER_OPTIONS.failure_threshold):
        gate.lost(gate._clock.monotonic())  # churn: the breaker opens for 30 s
    connector = GatedConnector(options, events=quiet())
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        with pytest.raises(aiohttp.ClientOSError) as raised:
            await session.get(f"http://127.0.0.1:{port}/")
    assert isinstance(raised.value.__cause__, ConnectRefusedError)


# -- cancellation at every await ---------------------------------------------------------------


class Slow(Backend):
    """A backend whose connect, check and close each wait at several points."""

    async def connect(self) -> int:
        for _ in range(3):
            await asyncio.sleep(0)
        await self.clock.sleep(0.01)
        return await super().connect()

    async def check(self, connection: int) -> bool:
        for _ in range(3):
            await asyncio.sleep(0)
        await self.clock.sleep(0.01)
        return True

    async def close(self, connection: int) -> None:
        for _ in range(3):
            await asyncio.sleep(0)
        await super().close(connection)


@pytest.mark.parametrize("where", ["open", "check", "line", "gate"])
@pytest.mark.parametrize("yields", range(0, 24, 1))
async def test_a_caller_cancelled_at_any_await_leaks_nothing(
    virtual_clock: VirtualClock, where: str, yields: int
) -> None:
    backend = Slow(virtual_clock)
    gate_options = GateOptions(
        connect_rate=Rate(1000, 1.0, burst=1000), max_connecting=1 if where == "gate" else 9
    )
    size = 2 if where == "gate" else 1
    pool = pool_for(
        backend,
        PoolOptions(max_size=size, check_after_idle=0.0),
        gate_options,
        check=backend.check,
    )
    holder: asyncio.Task[None] | None = None

    async def hold(seconds: float) -> None:
        async with pool.acquire():
            await virtual_clock.sleep(seconds)

    if where == "check":
        async with pool.acquire():
            pass
    elif where == "line":
        holder = asyncio.create_task(hold(0.001))
        await virtual_clock.sleep(0.1 / 1000)  # the holder has it: the victim waits in line
    elif where == "gate":
        holder = asyncio.create_task(pool.acquire().__aenter__())  # type: ignore[arg-type]
        await asyncio.sleep(0)  # connecting: the victim waits at the gate
    victim = asyncio.create_task(pool.acquire().__aenter__())
    for _ in range(yields):
        await asyncio.sleep(0)
    victim.cancel()
    results = await asyncio.gather(victim, return_exceptions=True)
    if holder is not None:
        await asyncio.gather(holder, return_exceptions=True)
    if isinstance(results[0], int):  # it got one before the cancel: give it back
        pool._give_back(next(p for p in pool._in_use if p.connection == results[0]))
    if where == "gate":
        for pooled in list(pool._in_use):
            pool._give_back(pooled)
    await closes_run()
    assert pool.stats.in_use == 0, pool.stats
    assert_nothing_held(pool)
    assert pool._reserved == 0
    async with pool.acquire():  # the pool still serves
        pass
    await settled(pool, backend)


# asyncio.run() cancels every task on the way out, the pool's close of that connection too
@pytest.mark.filterwarnings("ignore:coroutine 'Backend.close' was never awaited")
@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_a_keyboard_interrupt_in_a_block_discards_its_connection(
    interrupt: type[BaseException],
) -> None:
    """asyncio lets KeyboardInterrupt and SystemExit out of the event loop: the block's
    connection is discarded on the way out, and nothing else is held."""
    clock = VirtualClock(autojump=True)
    backend = Backend(clock)
    pool = pool_for(backend, PoolOptions(max_size=2))

    async def main() -> None:
        async with pool.acquire():
            pass
        async with pool.acquire():
            raise interrupt

    with pytest.raises(interrupt):
        asyncio.run(main())
    stats = pool.stats
    assert (stats.open, stats.in_use, stats.discarded) == (0, 0, 1), stats
    assert pool.gate.failures == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gate_options": {}}, "gate_options must be a GateOptions"),
        ({"clock": 1}, "clock must be a Clock"),
        ({"events": None}, "events must be an EventBus"),
    ],
)
async def test_the_adapters_refuse_bad_gate_arguments_when_made(
    kwargs: dict[str, Any], message: str
) -> None:
    """Not at the first request, deep inside it: when the connector or the pool is made."""
    from resilient.aiohttp import GatedConnector
    from resilient.errors import ArgumentTypeError
    from resilient.redis import gated_connection_pool

    with pytest.raises(ArgumentTypeError, match=f"GatedConnector.{message}"):
        GatedConnector(**kwargs)
    with pytest.raises(ArgumentTypeError, match=f"gated_connection_pool.{message}"):
        gated_connection_pool("redis://127.0.0.1:1/0", **kwargs)


@settings(max_examples=300, deadline=None)
@given(
    arrivals=st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.0, 0.01, 0.3]),  # gap before this caller
            st.sampled_from([0.0, 0.1, 0.5]),  # hold
            st.sampled_from(["ok", "ok", "raises", "cancelled", "again"]),
        ),
        min_size=1,
        max_size=25,
    ),
    max_size=st.integers(1, 3),
)
def test_waiting_callers_are_served_in_the_order_they_came(
    arrivals: list[tuple[float, float, str]], max_size: int
) -> None:
    """Connections open at once and nothing is checked: a caller is served the instant it
    gets a connection, and only the pool's line orders callers. (Within one instant, callers
    run in the event loop's order, not in the order they were handed their connection.)"""
    asyncio.run(_serve_in_order(arrivals, max_size))


async def _serve_in_order(arrivals: list[tuple[float, float, str]], max_size: int) -> None:
    clock = VirtualClock(autojump=True)
    backend = Backend(clock)
    pool = pool_for(backend, PoolOptions(max_size=max_size, acquire_timeout=1000.0))
    served: dict[int, float] = {}
    tickets = itertools.count()

    async def caller(hold: float, ending: str) -> None:
        for _ in range(2 if ending == "again" else 1):  # again: asks at once when done
            with contextlib.suppress(KeyError):
                ticket = next(tickets)
                async with pool.acquire():
                    served[ticket] = clock.monotonic()
                    await clock.sleep(hold)
                    if ending in ("raises", "again"):
                        raise KeyError
                    if ending == "cancelled":
                        raise asyncio.CancelledError

    tasks = []
    for gap, hold, ending in arrivals:
        if gap:
            await clock.sleep(gap)
        tasks.append(asyncio.create_task(caller(hold, ending)))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks, return_exceptions=True)
    times = [served[ticket] for ticket in range(next(tickets))]
    assert times == sorted(times), served
    await settled(pool, backend)
