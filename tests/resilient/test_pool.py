"""BoundedPool: hard bounds, first come first served, nothing leaked on any path, lifetimes
that do not expire together, staged rebuilds, every new connection through the gate.

Every test runs in virtual time (an autojumping :class:`VirtualClock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

import pytest

from resilient.clock import VirtualClock
from resilient.errors import (
    ArgumentTypeError,
    ArgumentValueError,
    ConnectRefusedError,
    PoolClosedError,
    PoolExhaustedError,
    PoolTimeoutError,
)
from resilient.events import EventRecorder
from resilient.pool import BoundedPool, ConnectGate, GateOptions, PoolOptions
from tests.resilient.pool_world import (
    Backend,
    closes_run,
    pool_for,
    quiet,
    settled,
)

# -- bounds ------------------------------------------------------------------------------------


async def test_a_connection_is_reused_and_goes_back_when_the_block_ends(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    pool = pool_for(backend)
    async with pool.acquire() as first:
        assert pool.stats.in_use == 1
    async with pool.acquire() as second:
        assert second == first
    assert backend.opened == [1]
    assert pool.stats.idle == 1
    await settled(pool, backend)


async def test_never_more_than_max_size_open_and_callers_served_in_order(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock, takes=0.01)
    pool = pool_for(backend, PoolOptions(max_size=3))
    served: list[int] = []

    async def caller(n: int) -> None:
        async with pool.acquire():
            served.append(n)
            assert pool.stats.open + pool.stats.connecting <= 3
            await virtual_clock.sleep(1.0)

    tasks = []
    for n in range(12):
        tasks.append(asyncio.create_task(caller(n)))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert served == list(range(12))
    assert backend.most_open == 3
    assert len(backend.opened) == 3
    await settled(pool, backend)


async def test_a_caller_past_max_waiting_is_refused_at_once(virtual_clock: VirtualClock) -> None:
    bus, recorder = quiet(), EventRecorder()
    bus.subscribe(recorder)
    backend = Backend(virtual_clock)
    pool = pool_for(backend, PoolOptions(max_size=1, max_waiting=2), events=bus)
    release = asyncio.Event()

    async def hold() -> None:
        async with pool.acquire():
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(3)]  # 1 holds, 2 wait
    for _ in range(5):
        await asyncio.sleep(0)
    assert pool.stats.waiting == 2
    with pytest.raises(PoolExhaustedError, match=r"2 callers already wait .*max_waiting 2"):
        async with pool.acquire():
            pass
    assert virtual_clock.monotonic() == 0.0
    assert pool.stats.exhausted == 1
    assert dict(recorder.named("exhausted")[0].attributes) == {"waiting": 2, "in_use": 1}
    assert recorder.named("exhausted")[0].source == "pool"
    release.set()
    await asyncio.gather(*holders)
    await settled(pool, backend)


async def test_a_caller_waits_no_longer_than_acquire_timeout(virtual_clock: VirtualClock) -> None:
    backend = Backend(virtual_clock)
    pool = pool_for(backend, PoolOptions(max_size=1, acquire_timeout=2.0))
    async with pool.acquire():
        with pytest.raises(PoolTimeoutError, match=r"no connection within acquire_timeout 2s"):
            async with pool.acquire():
                pass
        assert virtual_clock.monotonic() == pytest.approx(2.0)
        assert pool.stats.waiting == 0
    assert pool.stats.timeouts == 1
    await settled(pool, backend)


async def test_a_gate_that_cannot_connect_in_time_refuses_at_once(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    backend.error = ConnectionRefusedError("refused")
    gate = ConnectGate("backend", GateOptions(backoff_jitter=0.0), clock=virtual_clock)
    pool = pool_for(backend, PoolOptions(acquire_timeout=0.5), gate=gate)
    with pytest.raises(ConnectionRefusedError):
        async with pool.acquire():
            pass
    with pytest.raises(ConnectRefusedError, match="backoff after 1 failures"):
        async with pool.acquire():
            pass
    assert virtual_clock.monotonic() == 0.0
    assert (pool.stats.connect_failures, pool.stats.gated) == (2, 1)
    await settled(pool, backend)


# -- what raised is never lent again ------------------------------------------------------------


async def test_a_connection_whose_block_raised_is_closed_and_never_lent_again(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    pool = pool_for(backend)
    with pytest.raises(ValueError, match="business"):
        async with pool.acquire() as connection:
            raise ValueError("business")
    await closes_run()
    assert backend.closed == [connection]
    async with pool.acquire() as fresh:
        assert fresh != connection
    assert pool.stats.discarded == 1
    assert pool.gate.failures == 0  # the caller's error is no fault of the backend
    await settled(pool, backend)


async def test_a_connection_reset_in_use_soon_after_opening_is_churn(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    pool = pool_for(backend)
    with pytest.raises(ConnectionResetError):
        async with pool.acquire():
            raise ConnectionResetError
    assert pool.stats.churned == 1
    assert pool.gate.failures == 1
    await settled(pool, backend)


async def test_a_block_cancelled_discards_its_connection(virtual_clock: VirtualClock) -> None:
    backend = Backend(virtual_clock)
    pool = pool_for(backend)
    entered = asyncio.Event()

    async def user() -> None:
        async with pool.acquire():
            entered.set()
            await virtual_clock.sleep(10)

    task = asyncio.create_task(user())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await closes_run()
    assert backend.closed == [1]
    assert pool.stats.open == 0
    await settled(pool, backend)


async def test_a_waiter_cancelled_after_being_handed_a_connection_gives_it_back(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    pool = pool_for(backend, PoolOptions(max_size=1))
    release = asyncio.Event()

    async def hold() -> None:
        async with pool.acquire():
            await release.wait()
        waiter.cancel()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(pool.acquire().__aenter__())
    for _ in range(3):
        await asyncio.sleep(0)
    assert pool.stats.waiting == 1
    release.set()
    await holder  # handed the connection to the waiter, then cancelled it before it ran
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert pool.stats.idle == 1  # the connection came back, not lost
    async with pool.acquire() as connection:
        assert connection == 1
    await settled(pool, backend)


async def test_a_failed_check_discards_an_idle_connection(virtual_clock: VirtualClock) -> None:
    backend = Backend(virtual_clock)
    alive = {1: False}

    async def check(connection: int) -> bool:
        return alive.get(connection, True)

    pool = pool_for(backend, PoolOptions(check_after_idle=0.5), check=check)
    async with pool.acquire():
        pass
    async with pool.acquire() as again:
        assert again == 1  # idle for less than check_after_idle: not checked
    await virtual_clock.sleep(1.0)
    async with pool.acquire() as checked:
        assert checked == 2
    await closes_run()
    assert backend.closed == [1]
    await settled(pool, backend)


# -- lifetimes, idleness, warm-up, rebuild ---------------------------------------------------------


async def test_connections_opened_together_do_not_expire_together(
    virtual_clock: VirtualClock,
) -> None:
    """50 connections opened at one instant, lifetimes of 90 to 100 s: they close spread over
    those 10 s. Seen in 100 housekeeping passes (0.1 s apart) that is 0.5 closes a pass by
    chance; more than 7 in one pass has a chance under 1e-6 in a run (Poisson)."""
    backend = Backend(virtual_clock)
    options = PoolOptions(max_size=50, max_lifetime=100.0, lifetime_jitter=0.1, housekeeping=0.1)
    pool = pool_for(backend, options)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(50):
            await stack.enter_async_context(pool.acquire())
    assert backend.open_at == [0.0] * 50
    passes: list[int] = []
    while len(backend.closed) < 50 and virtual_clock.monotonic() < 101:
        before = len(backend.closed)
        await virtual_clock.sleep(0.1)
        await closes_run()
        passes.append(len(backend.closed) - before)
    assert sum(passes) == 50
    first = next(i for i, closed in enumerate(passes) if closed)
    assert first >= 899  # none before 90 s
    assert max(passes) <= 7
    assert sum(1 for closed in passes if closed) >= 25


async def test_idle_connections_close_down_to_min_size(virtual_clock: VirtualClock) -> None:
    backend = Backend(virtual_clock)
    options = PoolOptions(min_size=1, warm_jitter=0.0, idle_timeout=10.0, housekeeping=1.0)
    pool = pool_for(backend, options)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(4):
            await stack.enter_async_context(pool.acquire())
    assert pool.stats.open == 4
    await virtual_clock.sleep(12.0)
    assert pool.stats.open == 1
    assert pool.stats.idle_closed == 3  # the first caller's connection counts for min_size
    await settled(pool, backend)


async def test_min_size_is_warmed_lazily_with_jitter_through_the_gate(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    pool = pool_for(backend, PoolOptions(min_size=5, warm_jitter=2.0))
    await virtual_clock.sleep(10.0)
    assert backend.opened == []  # nothing before the first use
    async with pool.acquire():
        pass
    await virtual_clock.sleep(3.0)
    assert pool.stats.open >= 5
    warm = backend.open_at[1:]
    assert len(set(warm)) == len(warm)  # each at its own instant
    assert all(10.0 <= t <= 12.0 for t in warm)
    await settled(pool, backend)


async def test_a_rebuild_retires_connections_in_steps_never_all_at_once(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    pool = pool_for(backend, PoolOptions(max_size=6, rebuild_step=2, housekeeping=1.0))
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(6):
            await stack.enter_async_context(pool.acquire())
    pool.rebuild()
    await closes_run()
    assert len(backend.closed) == 2  # the first step, now
    await virtual_clock.sleep(1.0)
    await closes_run()
    assert len(backend.closed) == 4
    await virtual_clock.sleep(1.0)
    await closes_run()
    assert len(backend.closed) == 6
    await settled(pool, backend)


# -- closing ------------------------------------------------------------------------------------


async def test_close_refuses_waiters_and_closes_lent_connections_when_given_back(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    pool = pool_for(backend, PoolOptions(max_size=1))
    async with pool.acquire():
        waiter = asyncio.create_task(pool.acquire().__aenter__())
        await asyncio.sleep(0)
        await pool.aclose()
        with pytest.raises(PoolClosedError):
            await waiter
        assert backend.closed == []
    await closes_run()
    assert backend.closed == [1]
    with pytest.raises(PoolClosedError):
        async with pool.acquire():
            pass


# -- what a caller passes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_size": 0}, "PoolOptions.max_size"),
        ({"max_size": True}, "PoolOptions.max_size"),
        ({"min_size": 3, "max_size": 2}, "PoolOptions.min_size must be <= max_size"),
        ({"acquire_timeout": float("nan")}, "PoolOptions.acquire_timeout"),
        ({"lifetime_jitter": 2.0}, "PoolOptions.lifetime_jitter"),
        ({"max_waiting": -1}, "PoolOptions.max_waiting"),
    ],
)
def test_bad_pool_options_name_the_field(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises((ArgumentTypeError, ArgumentValueError), match=message):
        PoolOptions(**kwargs)


def test_the_constructor_names_the_bad_argument() -> None:
    async def connect() -> int:
        return 1

    with pytest.raises(ArgumentTypeError, match=r"BoundedPool\.connect must be a callable"):
        BoundedPool("c", print)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match=r"BoundedPool\.close must be a callable"):
        BoundedPool(connect, None)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match=r"BoundedPool\.check must be a callable or None"):
        BoundedPool(connect, print, check=1)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match=r"BoundedPool\.gate must be a ConnectGate"):
        BoundedPool(connect, print, gate="g")  # type: ignore[arg-type]


async def test_a_random_storm_of_callers_never_breaks_a_bound_or_leaks(
    virtual_clock: VirtualClock,
) -> None:
    """Random holds, errors, cancellations and timeouts: at no instant more than ``max_size``
    open, and when all is over every connection is accounted for."""
    rng = random.Random(11)
    backend = Backend(virtual_clock, takes=0.01)
    pool = pool_for(
        backend,
        PoolOptions(max_size=4, max_waiting=20, acquire_timeout=1.0, max_lifetime=3.0),
        GateOptions(max_connecting=2, backoff_initial=0.01, churn_window=0.0),
    )

    async def caller() -> None:
        await virtual_clock.sleep(rng.random() * 10)
        with contextlib.suppress(
            PoolTimeoutError, PoolExhaustedError, ConnectRefusedError, KeyError
        ):
            async with pool.acquire():
                assert backend.open_count <= 4
                await virtual_clock.sleep(rng.choice([0.0, 0.05, 0.5]))
                if rng.random() < 0.1:
                    raise KeyError("boom")

    tasks = [asyncio.create_task(caller()) for _ in range(400)]

    async def cancel(task: asyncio.Task[None]) -> None:
        await virtual_clock.sleep(rng.random() * 11)
        task.cancel()

    cancellers = [asyncio.create_task(cancel(task)) for task in rng.sample(tasks, 80)]
    await asyncio.gather(*tasks, *cancellers, return_exceptions=True)
    assert backend.most_open <= 4
    stats = pool.stats
    assert (stats.in_use, stats.waiting, stats.connecting) == (0, 0, 0)
    assert stats.open == backend.open_count
    await settled(pool, backend)


async def test_a_rebuild_with_new_options_keeps_them_and_retires_the_old_connections_in_steps(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    pool = pool_for(backend, PoolOptions(max_size=4, rebuild_step=1, housekeeping=1.0))
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(4):
            await stack.enter_async_context(pool.acquire())
    new = PoolOptions(max_size=2, rebuild_step=1, housekeeping=1.0)
    pool.rebuild(options=new)
    assert pool.options is new
    await closes_run()
    assert len(backend.closed) == 1  # one step now, the others one per pass
    await virtual_clock.sleep(1.0)
    await closes_run()
    assert len(backend.closed) == 2
    with pytest.raises(ArgumentTypeError, match=r"BoundedPool\.rebuild\(options\) must be"):
        pool.rebuild(options={"max_size": 1})  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match=r"BoundedPool\.rebuild\(connect\) must be"):
        pool.rebuild(connect="connect")  # type: ignore[arg-type]
    assert pool.options is new
    await settled(pool, backend)


def test_a_fresh_pool_counts_nothing_and_its_stats_are_a_frozen_slotted_snapshot() -> None:
    import dataclasses

    from resilient.pool import PoolStats
    from resilient.pool._records import Counters

    pool = pool_for(Backend(VirtualClock()))
    stats = pool.stats
    assert stats == PoolStats(*([0] * len(dataclasses.fields(PoolStats))))
    assert Counters() == Counters(*([0] * len(dataclasses.fields(Counters))))
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.open = 1  # type: ignore[misc]
    assert not hasattr(stats, "__dict__")
    assert not hasattr(Counters(), "__dict__")


async def test_a_connection_past_its_lifetime_is_never_lent_again(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    options = PoolOptions(max_lifetime=10.0, lifetime_jitter=0.0, housekeeping=10**6)
    pool = pool_for(backend, options)
    async with pool.acquire() as first:
        assert first == 1
    await virtual_clock.sleep(10.0)  # exactly at the end of its lifetime: no longer lent
    async with pool.acquire() as second:
        assert second == 2
    await closes_run()
    assert backend.closed == [1]
    assert pool.stats.expired == 1
    await settled(pool, backend)


async def test_a_failed_check_says_so_and_counts_as_a_lost_connection(
    virtual_clock: VirtualClock,
) -> None:
    bus, recorder = quiet(), EventRecorder()
    bus.subscribe(recorder)
    backend = Backend(virtual_clock)

    async def check(connection: int) -> bool:
        return False

    gate = ConnectGate("backend", GateOptions(churn_window=100.0), clock=virtual_clock, events=bus)
    pool = pool_for(backend, PoolOptions(check_after_idle=0.5), check=check, gate=gate, events=bus)
    async with pool.acquire():
        pass
    await virtual_clock.sleep(1.0)
    async with pool.acquire() as fresh:
        assert fresh == 2
    [discarded] = recorder.named("discarded")
    assert discarded.attributes == {"reason": "check failed", "age": 1.0}
    assert pool.stats.churned == 1  # lost within the gate's churn window
    await settled(pool, backend)
