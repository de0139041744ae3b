"""BoundedPool's housekeeping at exact instants: the warm-up (how many, when, counted how),
lifetimes and idleness at their very ends, a rebuild's steps (mutation survivors of
pool/_pool).

Every test runs in virtual time (an autojumping :class:`VirtualClock`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest

from resilient.clock import VirtualClock
from resilient.pool import GateOptions, PoolOptions
from tests.resilient.pool_world import FREE_GATE, Backend, Fixed, closes_run, pool_for, settled

QUIET = {"housekeeping": 1000.0, "max_lifetime": 10**6, "idle_timeout": 10**6}
"""No housekeeping pass, expiry or idle close unless a test asks for one."""


async def test_the_warm_up_opens_up_to_min_size_and_no_more(virtual_clock: VirtualClock) -> None:
    backend = Backend(virtual_clock)
    pool = pool_for(backend, PoolOptions(min_size=1, warm_jitter=1.0))
    async with pool.acquire():
        pass
    await virtual_clock.sleep(5.0)
    assert backend.opened == [1]  # the first caller's connection counts for min_size
    assert pool.stats.connects == 1
    await settled(pool, backend)


async def test_the_warm_up_waits_its_jittered_turn_and_a_pass_refills_at_once(
    virtual_clock: VirtualClock,
) -> None:
    """The first warm-up opens after its jittered delay, and no pass meanwhile opens what it
    is still waiting to open; a pass later replaces a connection lost at once."""
    backend = Backend(virtual_clock)
    options = PoolOptions(min_size=3, warm_jitter=10.0, housekeeping=1.0, idle_timeout=10**6)
    pool = pool_for(backend, options)
    pool._random = Fixed(0.9)  # type: ignore[assignment]  # each warm-up waits 9 s
    async with pool.acquire():
        pass
    await virtual_clock.sleep(8.5)  # eight passes, none of them opened anything
    assert backend.open_at == [0.0]
    await virtual_clock.sleep(1.0)
    assert backend.open_at == [0.0, 9.0, 9.0]
    assert pool.stats.connects == 3
    with pytest.raises(KeyError):
        async with pool.acquire():
            raise KeyError("lost")  # at 9.5 s: two left
    await virtual_clock.sleep(1.0)
    assert backend.open_at == [0.0, 9.0, 9.0, 10.0]  # the pass at 10 s, without delay
    with pytest.raises(KeyError):
        async with pool.acquire():
            raise KeyError("lost")
    await virtual_clock.sleep(1.0)
    assert backend.open_at == [0.0, 9.0, 9.0, 10.0, 11.0]  # and again: nothing stays counted
    assert pool.stats.open == 3
    await settled(pool, backend)


async def test_a_warm_up_that_fails_counts_one_failure_each_time(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    gate_options = GateOptions(backoff_initial=1.0, backoff_jitter=0.0, churn_window=0.0)
    pool = pool_for(backend, PoolOptions(min_size=2, warm_jitter=0.0, **QUIET), gate_options)
    async with pool.acquire():
        pass
    await closes_run()
    assert pool.stats.connects == 2  # the caller's and the warm-up's
    assert pool.stats.connect_failures == 0
    backend.error = ConnectionRefusedError("refused")
    for _ in range(2):
        with pytest.raises(KeyError):
            async with pool.acquire():
                raise KeyError("lost")
    with pytest.raises(ConnectionRefusedError):
        async with pool.acquire():
            pass
    assert pool.stats.connect_failures == 1
    pool.housekeep()  # two missing: two warm-ups, each refused once the backoff has passed
    await virtual_clock.sleep(100.0)
    assert pool.stats.connect_failures == 3
    assert (pool.stats.connects, pool.stats.open, pool.stats.connecting) == (2, 0, 0)
    backend.error = None
    pool.housekeep()
    await virtual_clock.sleep(100.0)
    assert (pool.stats.connects, pool.stats.open, pool.stats.idle) == (4, 2, 2)
    await settled(pool, backend)


async def test_a_connection_expires_at_the_pass_at_the_end_of_its_lifetime(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    options = PoolOptions(
        max_size=2, max_lifetime=10.0, lifetime_jitter=0.0, housekeeping=5.0, idle_timeout=10**6
    )
    pool = pool_for(backend, options)
    async with pool.acquire(), pool.acquire():
        pass
    await virtual_clock.sleep(9.9)
    assert backend.closed == []
    await virtual_clock.sleep(0.1)  # the pass at 10 s
    await closes_run()
    assert sorted(backend.closed) == [1, 2]
    stats = pool.stats
    assert (stats.open, stats.idle, stats.expired, stats.idle_closed) == (0, 0, 2, 0)
    await settled(pool, backend)


async def test_an_idle_connection_closes_at_the_pass_at_the_end_of_its_idle_timeout(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    options = PoolOptions(max_size=3, min_size=1, idle_timeout=10.0, housekeeping=5.0)
    pool = pool_for(backend, options)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(3):
            await stack.enter_async_context(pool.acquire())
    await virtual_clock.sleep(9.9)
    assert backend.closed == []
    await virtual_clock.sleep(0.1)  # the pass at 10 s: down to min_size
    await closes_run()
    assert len(backend.closed) == 2
    stats = pool.stats
    assert (stats.open, stats.idle, stats.idle_closed, stats.expired) == (1, 1, 2, 0)
    await virtual_clock.sleep(100.0)
    assert (pool.stats.open, pool.stats.idle_closed) == (1, 2)  # min_size stays open
    await settled(pool, backend)


async def test_a_rebuild_retires_idle_connections_first_then_lent_ones_once_each(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    pool = pool_for(backend, PoolOptions(max_size=4, rebuild_step=2, **QUIET), FREE_GATE)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(4):
            await stack.enter_async_context(pool.acquire())
    lent = [pool.acquire(), pool.acquire()]
    for lease in lent:
        await lease.__aenter__()  # 1 and 2 lent (given back last), 3 and 4 idle
    pool.rebuild()
    await closes_run()
    assert sorted(backend.closed) == [3, 4]  # the idle ones, in the first step
    assert pool.stats.expired == 2
    pool.housekeep()  # the second step marks the lent ones
    for lease in lent:
        await lease.__aexit__(None, None, None)
    await closes_run()
    assert sorted(backend.closed) == [1, 2, 3, 4]
    assert pool.stats.expired == 4
    async with pool.acquire() as fresh:
        assert fresh == 5
    pool.housekeep()  # nothing older is left to retire
    await closes_run()
    assert (len(backend.closed), pool.stats.idle) == (4, 1)
    await settled(pool, backend)


async def test_a_rebuild_uses_the_new_connect_from_then_on_and_each_rebuild_retires_the_last(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    made: list[str] = []

    def dialer(name: str) -> Callable[[], Awaitable[int]]:
        async def connect() -> int:
            made.append(name)
            return await backend.connect()

        return connect

    pool = pool_for(backend, PoolOptions(rebuild_step=5, **QUIET))
    async with pool.acquire() as first:
        pass
    pool.rebuild(connect=dialer("new"))
    await closes_run()
    assert backend.closed == [first]
    async with pool.acquire() as second:
        pass
    pool.rebuild()  # the connect stays the last one given; its connections are retired too
    await closes_run()
    assert backend.closed == [first, second]
    async with pool.acquire():
        pass
    assert made == ["new", "new"]
    await settled(pool, backend)


async def test_an_idle_connection_closes_once_idle_for_idle_timeout_since_its_last_use(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    options = PoolOptions(idle_timeout=10.0, housekeeping=5.0)
    pool = pool_for(backend, options)
    await virtual_clock.sleep(5.0)
    async with pool.acquire():  # at 5 s: the passes come at 10, 15, ... s
        pass
    await virtual_clock.sleep(9.9)
    assert backend.closed == []  # the pass at 10 s found it idle for 5 s
    await virtual_clock.sleep(0.1)
    await closes_run()
    assert backend.closed == [1]  # the pass at 15 s: idle for 10 s
    assert pool.stats.idle_closed == 1
    await settled(pool, backend)


async def test_a_warm_up_never_takes_the_place_handed_to_a_caller_in_line(
    virtual_clock: VirtualClock,
) -> None:
    """A caller in line handed a free place opens its connection itself: a warm-up whose turn
    comes first leaves the place alone (the caller's connect fails at once here, on its own
    attempt, not after a warm-up's failure and the backoff that follows it)."""
    backend = Backend(virtual_clock)
    pool = pool_for(backend, PoolOptions(max_size=1, min_size=1, warm_jitter=1.0, **QUIET))
    pool._random = Fixed(0.5)  # type: ignore[assignment]  # the warm-up's turn: at 0.5 s
    lease = pool.acquire()
    await lease.__aenter__()
    tried: list[float] = []

    async def waiter() -> None:
        try:
            async with pool.acquire():
                pass
        finally:
            tried.append(virtual_clock.monotonic())

    in_line = asyncio.create_task(waiter())
    await virtual_clock.sleep(0.5)
    backend.error = ConnectionRefusedError("refused")
    await lease.__aexit__(KeyError, KeyError("lost"), None)  # its place goes to the waiter
    with pytest.raises(ConnectionRefusedError):
        await in_line
    assert tried == [0.5]
    assert (pool.stats.connect_failures, pool.gate.stats.attempts) == (1, 2)
    backend.error = None
    await settled(pool, backend)


async def test_a_pass_counts_only_the_warm_ups_still_waiting_for_their_turn(
    virtual_clock: VirtualClock,
) -> None:
    """Once the first warm-ups are over, a pass that finds the pool full starts none: a
    connection lost right after it is replaced by the next pass, not at once."""
    backend = Backend(virtual_clock)
    pool = pool_for(backend, PoolOptions(min_size=2, warm_jitter=1.0, **QUIET))
    pool._random = Fixed(0.5)  # type: ignore[assignment]
    lease = pool.acquire()
    await lease.__aenter__()  # 1; two warm-ups wait for 0.5 s, the first one opens 2
    await virtual_clock.sleep(1.0)
    assert backend.opened == [1, 2]
    pool.housekeep()  # the pool is full
    await lease.__aexit__(KeyError, KeyError("lost"), None)
    await closes_run()
    assert backend.opened == [1, 2]
    pool.housekeep()
    await closes_run()
    assert backend.opened == [1, 2, 3]
    await settled(pool, backend)
