"""BoundedPool against hostile callers and bad timing: a connect, close or check that
misbehaves, a block that raises anything, callers in line: nothing changes the pool's state
for other callers, leaks a place, or breaks a bound.

Every test runs in virtual time (an autojumping :class:`VirtualClock`), unless it says.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from resilient.clock import VirtualClock
from resilient.errors import (
    PoolExhaustedError,
    PoolTimeoutError,
)
from resilient.pool import (
    BoundedPool,
    ConnectGate,
    GateOptions,
    PoolOptions,
)
from resilient.ratelimit import Rate
from tests.resilient.pool_world import (
    FREE_GATE,
    Abort,
    Backend,
    assert_nothing_held,
    closes_run,
    pool_for,
    quiet,
    settled,
)

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
