"""ConnectGate and the adapters against hostile callers and bad timing: deadlines, closes,
overflowing backoffs, shared breakers, bad gate arguments.

Every test runs in virtual time (an autojumping :class:`VirtualClock`), unless it says.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

from resilient.breaker import BreakerOptions, CircuitBreaker
from resilient.clock import VirtualClock
from resilient.errors import (
    ConnectRefusedError,
    PoolClosedError,
    PoolTimeoutError,
)
from resilient.pool import (
    GATE_BREAKER_OPTIONS,
    ConnectGate,
    GateOptions,
    PoolOptions,
)
from resilient.ratelimit import Rate
from tests.resilient.pool_world import (
    FREE_GATE,
    Backend,
    assert_nothing_held,
    closes_run,
    pool_for,
    quiet,
    settled,
)

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
    """The gate's timer task is stopped while a caller comes: the caller's wait still ends (it
    was left waiting forever, its wake-up dropped with the stopped timer's): it is refused, as
    the gate is closed, when it next looks."""
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
    with pytest.raises(ConnectRefusedError, match="gate closed"):
        await asyncio.wait_for(late, timeout=5.0)
    assert virtual_clock.monotonic() <= 1.5


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
