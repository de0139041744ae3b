"""BoundedPool in exact words and exact numbers: every message a caller sees, the gate a pool
makes for itself, what the pool says it holds, the names of its tasks, the events of a
rebuild and a close, and what it logs of a close that fails (mutation survivors of pool/_pool
and pool/_lending).

Every test runs in virtual time (an autojumping :class:`VirtualClock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any

import pytest

from resilient.clock import VirtualClock
from resilient.errors import (
    ArgumentTypeError,
    PoolClosedError,
    PoolExhaustedError,
    PoolTimeoutError,
)
from resilient.events import EventRecorder
from resilient.pool import BoundedPool, ConnectGate, GateOptions, PoolOptions
from tests.resilient.pool_world import Backend, Boom, closes_run, pool_for, quiet, settled


async def connect() -> int:
    return 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"connect": "c"}, "BoundedPool.connect must be a callable, got 'c'"),
        ({"close": None}, "BoundedPool.close must be a callable, got None"),
        ({"check": 1}, "BoundedPool.check must be a callable or None, got 1"),
        ({"options": {}}, "BoundedPool.options must be a PoolOptions, got {}"),
        ({"clock": 1}, "BoundedPool.clock must be a Clock, got 1"),
        ({"events": 1}, "BoundedPool.events must be an EventBus, got 1"),
        ({"gate": "g"}, "BoundedPool.gate must be a ConnectGate or None, got 'g'"),
    ],
)
def test_the_constructor_says_which_argument_is_bad_in_exact_words(
    kwargs: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"connect": connect, "close": print, **kwargs}
    with pytest.raises(ArgumentTypeError) as raised:
        BoundedPool(**arguments)
    assert str(raised.value) == message


class Dialer:
    async def __call__(self) -> int:
        return 1


async def test_a_pool_without_a_gate_makes_its_own_named_for_its_connect(
    virtual_clock: VirtualClock,
) -> None:
    bus = quiet()
    pool = BoundedPool(connect, print, clock=virtual_clock, events=bus)
    assert isinstance(pool.gate, ConnectGate)
    assert pool.gate.destination == "pool of connect"
    assert pool.gate.options == GateOptions()
    assert BoundedPool(Dialer(), print).gate.destination == "pool of Dialer"
    assert BoundedPool(functools.partial(connect), print).gate.destination == "pool of partial"
    other = BoundedPool(connect, print, clock=virtual_clock, events=bus)
    assert other.gate is not pool.gate  # each its own
    async with pool.acquire() as connection:
        assert connection == 1
    assert pool.gate.stats.connects == 1  # the pool's connects pass its gate
    await pool.aclose()


async def test_the_pool_says_what_it_holds(virtual_clock: VirtualClock) -> None:
    backend = Backend(virtual_clock, takes=1.0)
    pool = pool_for(backend, PoolOptions(max_size=3))
    assert repr(pool) == "BoundedPool(open=0, idle=0, in_use=0, waiting=0, max_size=3)"
    assert pool.closed is False
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(pool.acquire())
        await stack.enter_async_context(pool.acquire())
        opening = asyncio.create_task(stack.enter_async_context(pool.acquire()))
        await virtual_clock.sleep(0.5)  # the third connect is half way
        stats = pool.stats
        assert (stats.open, stats.in_use, stats.connecting, stats.connects) == (2, 2, 1, 2)
        assert repr(pool) == "BoundedPool(open=2, idle=0, in_use=2, waiting=0, max_size=3)"
        await opening
        waiter = asyncio.create_task(pool.acquire().__aenter__())
        await asyncio.sleep(0)
        assert repr(pool) == "BoundedPool(open=3, idle=0, in_use=3, waiting=1, max_size=3)"
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
    assert repr(pool) == "BoundedPool(open=3, idle=3, in_use=0, waiting=0, max_size=3)"
    await pool.aclose()
    assert pool.closed is True
    await settled(pool, backend)


async def test_the_pools_tasks_are_named_for_it(virtual_clock: VirtualClock) -> None:
    backend = Backend(virtual_clock)
    pool = pool_for(backend, PoolOptions(min_size=2, warm_jitter=5.0))
    async with pool.acquire():
        names = sorted(task.get_name() for task in asyncio.all_tasks())
    assert names.count("BoundedPool.housekeeper") == 1
    assert names.count("BoundedPool.warm") == 2
    assert names.count("BoundedPool.watchdog") == 1  # of the acquire_timeout just kept
    await settled(pool, backend)


async def test_closing_stops_the_warm_up_waiting_for_its_turn(virtual_clock: VirtualClock) -> None:
    """A warm-up still in its jittered delay is cancelled: the close neither waits for it nor
    lets it open a connection."""
    backend = Backend(virtual_clock)
    pool = pool_for(backend, PoolOptions(min_size=3, warm_jitter=100.0))
    async with pool.acquire():
        pass
    await pool.aclose()
    assert virtual_clock.monotonic() < 1.0
    assert backend.opened == [1]
    await settled(pool, backend)


# -- what a caller is told ----------------------------------------------------------------------


async def test_an_acquire_from_a_closed_pool_is_refused_saying_so(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    pool = pool_for(backend)
    await pool.aclose()
    with pytest.raises(PoolClosedError) as raised:
        async with pool.acquire():
            pass
    assert str(raised.value) == "the pool is closed: acquire() refused"
    assert backend.opened == []


async def test_a_caller_in_line_when_the_pool_closes_is_told_so(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    pool = pool_for(backend, PoolOptions(max_size=1))
    async with pool.acquire():
        waiter = asyncio.create_task(pool.acquire().__aenter__())
        await asyncio.sleep(0)
        await pool.aclose()
        with pytest.raises(PoolClosedError) as raised:
            await waiter
    assert str(raised.value) == "the pool closed while acquire() waited"


async def test_a_caller_connecting_when_the_pool_closes_is_told_so(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock, takes=1.0)
    pool = pool_for(backend)
    caller = asyncio.create_task(pool.acquire().__aenter__())
    await virtual_clock.sleep(0.5)
    await pool.aclose()
    with pytest.raises(PoolClosedError) as raised:
        await caller
    assert str(raised.value) == "the pool closed while acquire() connected"
    await closes_run()
    assert backend.closed == [1]  # the connection it opened is nobody's: closed
    stats = pool.stats
    assert (stats.open, stats.connecting, stats.connects) == (0, 0, 1)
    await settled(pool, backend)


async def test_a_timeout_says_how_long_and_what_the_pool_held(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    gate = ConnectGate(
        "backend", GateOptions(max_connecting=1), clock=virtual_clock, events=quiet()
    )
    pool = pool_for(backend, PoolOptions(max_size=1, acquire_timeout=2.5), gate=gate)
    hang = asyncio.Event()

    async def hanging() -> int:
        await hang.wait()
        return 0

    async with pool.acquire():
        elsewhere = [asyncio.create_task(gate.connect(hanging)) for _ in range(2)]
        await asyncio.sleep(0)
        assert (gate.connecting, gate.waiting) == (1, 1)  # one attempt, one caller behind it
        first = asyncio.create_task(pool.acquire().__aenter__())
        await virtual_clock.sleep(1.0)
        second = asyncio.create_task(pool.acquire().__aenter__())
        with pytest.raises(PoolTimeoutError) as raised:
            await first
        assert str(raised.value) == (
            "no connection within acquire_timeout 2.5s: 1 open or opening of max_size 1, "
            "1 waiting, 1 waiting on the gate"
        )
        assert virtual_clock.monotonic() == 2.5
        assert pool.stats.timeouts == 1
        with pytest.raises(PoolTimeoutError, match=r"acquire_timeout 2\.5s: .*, 0 waiting, "):
            await second
        assert pool.stats.timeouts == 2
        hang.set()
        await asyncio.gather(*elsewhere)
    await settled(pool, backend)


async def test_a_caller_past_max_waiting_is_told_how_many_wait(
    virtual_clock: VirtualClock,
) -> None:
    bus, recorder = quiet(), EventRecorder()
    bus.subscribe(recorder)
    backend = Backend(virtual_clock)
    pool = pool_for(backend, PoolOptions(max_size=2, max_waiting=3), events=bus)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(2):
            await stack.enter_async_context(pool.acquire())
        waiters = [asyncio.create_task(pool.acquire().__aenter__()) for _ in range(3)]
        await asyncio.sleep(0)
        with pytest.raises(PoolExhaustedError) as raised:
            await pool.acquire().__aenter__()
        assert str(raised.value) == (
            "3 callers already wait for a connection (max_waiting 3): acquire() refused"
        )
        with pytest.raises(PoolExhaustedError):
            await pool.acquire().__aenter__()
        assert pool.stats.exhausted == 2
        assert [dict(e.attributes) for e in recorder.named("exhausted", "pool")] == [
            {"waiting": 3, "in_use": 2}
        ] * 2
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    await settled(pool, backend)


async def test_a_rebuild_and_a_close_say_how_many_connections_they_concern(
    virtual_clock: VirtualClock,
) -> None:
    bus, recorder = quiet(), EventRecorder()
    bus.subscribe(recorder)
    backend = Backend(virtual_clock, takes=1.0)
    options = PoolOptions(max_size=4, rebuild_step=1, housekeeping=1000.0)
    pool = pool_for(backend, options, events=bus)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(3):
            await stack.enter_async_context(pool.acquire())
        opening = asyncio.create_task(stack.enter_async_context(pool.acquire()))
        await virtual_clock.sleep(0.5)  # three open and lent, a fourth connecting
        pool.rebuild()
        [rebuilding] = recorder.named("rebuilding", "pool")
        assert dict(rebuilding.attributes) == {"old": 3}  # open, not the one connecting
        await opening
    await closes_run()
    assert (len(backend.closed), pool.stats.idle) == (1, 3)  # the first step retired one
    lent = pool.acquire()
    await lent.__aenter__()
    await pool.aclose()
    await pool.aclose()  # said once
    [closed] = recorder.named("closed", "pool")
    assert dict(closed.attributes) == {"closed": 2, "in_use": 1}
    await closes_run()
    assert len(backend.closed) == 3
    await lent.__aexit__(None, None, None)
    await settled(pool, backend)


async def test_a_lease_entered_twice_is_refused_saying_so(virtual_clock: VirtualClock) -> None:
    backend = Backend(virtual_clock)
    pool = pool_for(backend)
    lease = pool.acquire()
    async with lease:
        with pytest.raises(RuntimeError) as raised:
            await lease.__aenter__()
        assert str(raised.value) == "a lease is entered once: call pool.acquire() again"
    assert pool.stats.in_use == 0
    await settled(pool, backend)


class SlowClose(Backend):
    async def close(self, connection: int) -> None:
        await self.clock.sleep(1.0)
        await super().close(connection)


async def test_closing_waits_for_the_closes_of_connections_given_back_meanwhile(
    virtual_clock: VirtualClock,
) -> None:
    backend = SlowClose(virtual_clock)
    pool = pool_for(backend, PoolOptions(max_size=2))
    lease = pool.acquire()
    await lease.__aenter__()  # 1, lent
    async with pool.acquire():  # 2, idle after
        pass
    ended: list[float] = []

    async def close() -> None:
        await pool.aclose()
        ended.append(virtual_clock.monotonic())

    closing = asyncio.create_task(close())
    await virtual_clock.sleep(0.5)  # the idle connection's close is half way
    await lease.__aexit__(None, None, None)  # closed now: its close ends at 1.5 s
    await closing
    assert ended == [1.5]
    assert sorted(backend.closed) == [1, 2]


async def test_a_pool_used_as_a_context_closes_at_its_end(virtual_clock: VirtualClock) -> None:
    backend = Backend(virtual_clock)
    async with pool_for(backend) as pool:
        async with pool.acquire():
            pass
        assert not pool.closed
    assert pool.closed
    await settled(pool, backend)


async def test_a_rebuild_says_which_argument_is_bad_in_exact_words(
    virtual_clock: VirtualClock,
) -> None:
    pool = pool_for(Backend(virtual_clock))
    with pytest.raises(ArgumentTypeError) as raised:
        pool.rebuild(options={"max_size": 1})  # type: ignore[arg-type]
    assert str(raised.value) == (
        "BoundedPool.rebuild(options) must be a PoolOptions, got {'max_size': 1}"
    )
    with pytest.raises(ArgumentTypeError) as raised:
        pool.rebuild(connect="connect")  # type: ignore[arg-type]
    assert str(raised.value) == "BoundedPool.rebuild(connect) must be a callable, got 'connect'"


# -- the pool's own closes, in a task of its own ---------------------------------------------------


async def test_a_close_that_raises_is_logged_and_the_connection_dropped(
    virtual_clock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    backend = Backend(virtual_clock)

    async def close(connection: int) -> None:
        raise RuntimeError("close is broken")

    gate = ConnectGate("backend", clock=virtual_clock, events=quiet())
    pool = BoundedPool(backend.connect, close, gate=gate, clock=virtual_clock, events=quiet())
    with caplog.at_level(logging.ERROR, logger="resilient.pool"):
        with pytest.raises(Boom):
            async with pool.acquire():
                raise Boom
        await closes_run()
    [record] = caplog.records
    assert record.getMessage() == "BoundedPool: close() raised; the connection is dropped"
    assert record.name == "resilient.pool"
    assert record.exc_info is not None
    assert pool.stats.open == 0
    await pool.aclose()


async def test_a_close_that_hangs_is_dropped_after_connect_timeout_and_says_so(
    virtual_clock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    backend = Backend(virtual_clock)
    closes: list[float] = []

    async def close(connection: int) -> None:
        closes.append(virtual_clock.monotonic())
        await asyncio.Event().wait()

    gate = ConnectGate(
        "backend", GateOptions(connect_timeout=2.5), clock=virtual_clock, events=quiet()
    )
    pool = BoundedPool(backend.connect, close, gate=gate, clock=virtual_clock, events=quiet())
    with caplog.at_level(logging.ERROR, logger="resilient.pool"):
        with pytest.raises(Boom):
            async with pool.acquire():
                raise Boom
        await pool.aclose()
    assert virtual_clock.monotonic() == 2.5
    [record] = caplog.records
    assert record.getMessage() == "BoundedPool: close() took over 2.5s; the connection is dropped"
    assert record.name == "resilient.pool"
    assert record.exc_info is None
    assert closes == [0.0]


async def test_a_close_that_is_not_async_is_called_at_once(virtual_clock: VirtualClock) -> None:
    backend = Backend(virtual_clock)
    closed: list[int] = []
    gate = ConnectGate("backend", clock=virtual_clock, events=quiet())
    pool = BoundedPool(backend.connect, closed.append, gate=gate, clock=virtual_clock)
    with contextlib.suppress(Boom):
        async with pool.acquire():
            raise Boom
    assert closed == [1]
    assert not pool._tasks
    await pool.aclose()


async def test_a_close_that_raises_at_once_is_logged_and_the_connection_dropped(
    virtual_clock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    backend = Backend(virtual_clock)

    def close(connection: int) -> None:
        raise RuntimeError("close is broken")

    gate = ConnectGate("backend", clock=virtual_clock, events=quiet())
    pool = BoundedPool(backend.connect, close, gate=gate, clock=virtual_clock, events=quiet())
    with caplog.at_level(logging.ERROR, logger="resilient.pool"), pytest.raises(Boom):
        async with pool.acquire():
            raise Boom
    [record] = caplog.records
    assert record.getMessage() == "BoundedPool: close() raised; the connection is dropped"
    assert (record.name, record.levelno) == ("resilient.pool", logging.ERROR)
    assert record.exc_info is not None
    assert not pool._tasks
    await pool.aclose()
