"""How BoundedPool lends, at the edges: the check on borrowing at exactly ``check_after_idle``,
what each failed check says and counts, the caller whose check failed keeping its turn
whatever the failure, lifetimes at their very end, and every free place going to the right
caller in line (mutation survivors of pool/_lending).

Every test runs in virtual time (an autojumping :class:`VirtualClock`).
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from resilient.clock import VirtualClock
from resilient.errors import ConnectRefusedError, PoolClosedError, PoolTimeoutError
from resilient.events import EventRecorder
from resilient.pool import ConnectGate, GateOptions, PoolOptions
from tests.resilient.pool_world import Abort, Backend, Boom, closes_run, pool_for, quiet, settled


@pytest.mark.parametrize("start", [0.0, -1000.0, 1000.0])
async def test_a_connection_idle_for_exactly_check_after_idle_is_checked(start: float) -> None:
    """Only the differences of the clock's readings count, wherever it starts."""
    virtual_clock = VirtualClock(start, autojump=True)
    backend = Backend(virtual_clock)
    checked: list[tuple[int, float]] = []

    async def check(connection: int) -> bool:
        checked.append((connection, virtual_clock.monotonic()))
        return True

    pool = pool_for(backend, PoolOptions(check_after_idle=1.0), check=check)
    async with pool.acquire():
        pass
    await virtual_clock.sleep(0.999)
    async with pool.acquire():  # given back at 0 s, idle for less: not checked
        pass
    await virtual_clock.sleep(1.0)
    async with pool.acquire() as connection:  # given back at 0.999 s: idle for exactly 1 s
        assert connection == 1
    assert checked == [(1, start + 1.999)]
    await settled(pool, backend)


async def test_without_a_check_an_idle_connection_is_lent_as_it_is(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    pool = pool_for(backend, PoolOptions(check_after_idle=0.0))
    for _ in range(3):
        async with pool.acquire() as connection:
            assert connection == 1
        await virtual_clock.sleep(5.0)
    assert pool.stats.discarded == 0
    await settled(pool, backend)


@pytest.mark.parametrize(
    ("answer", "reason", "lost"),
    [
        (False, "check failed", True),
        (None, "check answered None, not a bool", False),
        (1, "check answered 1, not a bool", False),
        (ConnectionResetError("gone"), "check raised ConnectionResetError", True),
        (Boom("bug"), "check raised Boom", False),
    ],
)
async def test_a_failed_check_says_why_and_blames_the_destination_only_for_its_faults(
    virtual_clock: VirtualClock, answer: object, reason: str, lost: bool
) -> None:
    bus, recorder = quiet(), EventRecorder()
    bus.subscribe(recorder)
    backend = Backend(virtual_clock)

    async def check(connection: int) -> bool:
        if connection > 1:
            return True
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[return-value]

    gate = ConnectGate("backend", GateOptions(churn_window=100.0), clock=virtual_clock, events=bus)
    pool = pool_for(backend, PoolOptions(check_after_idle=0.5), check=check, gate=gate, events=bus)
    async with pool.acquire():
        pass
    await virtual_clock.sleep(2.0)
    async with pool.acquire() as fresh:
        assert fresh == 2
    [discarded] = recorder.named("discarded", "pool")
    assert dict(discarded.attributes) == {"reason": reason, "age": 2.0}
    stats = pool.stats
    assert (stats.discarded, stats.churned, stats.expired, stats.open) == (1, int(lost), 0, 1)
    assert (gate.stats.churned, gate.failures) == (int(lost), int(lost))
    await closes_run()
    assert backend.closed == [1]
    await settled(pool, backend)


async def test_a_check_interrupted_says_so_and_blames_nobody(virtual_clock: VirtualClock) -> None:
    bus, recorder = quiet(), EventRecorder()
    bus.subscribe(recorder)
    backend = Backend(virtual_clock)

    async def check(connection: int) -> bool:
        raise Abort

    gate = ConnectGate("backend", GateOptions(churn_window=100.0), clock=virtual_clock, events=bus)
    pool = pool_for(backend, PoolOptions(check_after_idle=0.0), check=check, gate=gate, events=bus)
    async with pool.acquire():
        pass
    await virtual_clock.sleep(1.0)
    with pytest.raises(Abort):
        async with pool.acquire():
            pass
    [discarded] = recorder.named("discarded", "pool")
    assert dict(discarded.attributes) == {"reason": "Abort in its check", "age": 1.0}
    assert (pool.stats.discarded, pool.stats.churned, gate.failures) == (1, 0, 0)
    await settled(pool, backend)


@pytest.mark.parametrize("answer", [False, None, Boom("bug")])
async def test_a_caller_whose_check_failed_keeps_its_turn_whatever_the_failure(
    virtual_clock: VirtualClock, answer: object
) -> None:
    """The connection failed its check while a later caller came to wait: the first caller
    opens the next connection (its place was not handed on), the later one waits for it."""
    backend = Backend(virtual_clock, takes=0.1)
    answers = [answer]

    async def check(connection: int) -> bool:
        await virtual_clock.sleep(0.1)
        answer = answers.pop() if answers else True
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[return-value]

    pool = pool_for(backend, PoolOptions(max_size=1, check_after_idle=0.0), check=check)
    async with pool.acquire():
        pass
    served: list[tuple[str, int]] = []

    async def caller(name: str) -> None:
        async with pool.acquire() as connection:
            served.append((name, connection))
            await virtual_clock.sleep(1.0)

    first = asyncio.create_task(caller("first"))
    await virtual_clock.sleep(0.05)  # first is in its check
    await caller("later")
    await first
    assert served == [("first", 2), ("later", 2)]
    assert pool.stats.discarded == 1
    await settled(pool, backend)


async def test_a_block_that_raised_says_what_in_its_discard(virtual_clock: VirtualClock) -> None:
    bus, recorder = quiet(), EventRecorder()
    bus.subscribe(recorder)
    backend = Backend(virtual_clock)
    pool = pool_for(backend, PoolOptions(max_size=2), events=bus)
    await virtual_clock.sleep(1.0)
    async with pool.acquire():  # opened at 1 s
        await virtual_clock.sleep(3.0)
    with pytest.raises(Boom):
        async with pool.acquire():
            raise Boom
    [discarded] = recorder.named("discarded", "pool")
    assert dict(discarded.attributes) == {"reason": "Boom raised in use", "age": 3.0}
    assert (pool.stats.discarded, pool.stats.churned, pool.stats.open) == (1, 0, 0)
    for _ in range(2):
        with pytest.raises(ConnectionResetError):
            async with pool.acquire():
                raise ConnectionResetError
    assert (pool.stats.discarded, pool.stats.churned) == (3, 2)
    await settled(pool, backend)


async def test_a_connection_given_back_goes_to_the_caller_in_line(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    pool = pool_for(backend, PoolOptions(max_size=1))
    got: list[tuple[int, float]] = []

    async def later() -> None:
        async with pool.acquire() as connection:
            got.append((connection, virtual_clock.monotonic()))

    async with pool.acquire():
        waiter = asyncio.create_task(later())
        await virtual_clock.sleep(1.0)
        assert pool.stats.waiting == 1
    await waiter
    assert got == [(1, 1.0)]
    assert (pool.stats.connects, pool.stats.idle, pool.stats.in_use) == (1, 1, 0)
    await settled(pool, backend)


# -- lifetimes, lines and places ----------------------------------------------------------------


async def test_a_connection_given_back_at_the_end_of_its_lifetime_is_closed_then(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    options = PoolOptions(max_lifetime=10.0, lifetime_jitter=0.0, housekeeping=10**6)
    pool = pool_for(backend, options)
    async with pool.acquire():
        await virtual_clock.sleep(10.0)
    await closes_run()
    assert backend.closed == [1]
    assert (pool.stats.expired, pool.stats.idle, pool.stats.open) == (1, 0, 0)
    await settled(pool, backend)


async def test_an_expired_idle_connection_is_passed_over_for_the_next_one(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    options = PoolOptions(
        max_size=2, max_lifetime=10.0, lifetime_jitter=0.0, housekeeping=10**6, check_after_idle=0
    )
    pool = pool_for(backend, options)
    first = pool.acquire()
    await first.__aenter__()  # 1, lives until 10 s
    await virtual_clock.sleep(5.0)
    async with pool.acquire():  # 2, lives until 15 s
        pass
    await first.__aexit__(None, None, None)  # 1 is lent first: the last given back
    await virtual_clock.sleep(7.0)
    async with pool.acquire() as connection:
        assert connection == 2
    await closes_run()
    assert backend.closed == [1]
    assert backend.opened == [1, 2]
    await settled(pool, backend)


async def test_a_gate_that_cannot_connect_within_acquire_timeout_refuses_at_once_at_any_time(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    backend.error = ConnectionRefusedError("refused")
    gate = ConnectGate("backend", GateOptions(backoff_jitter=0.0), clock=virtual_clock)
    pool = pool_for(backend, PoolOptions(acquire_timeout=0.5), gate=gate)
    await virtual_clock.sleep(10.0)
    with pytest.raises(ConnectionRefusedError):
        async with pool.acquire():
            pass
    for _ in range(2):
        with pytest.raises(ConnectRefusedError, match="backoff after 1 failures"):
            async with pool.acquire():
                pass
    assert virtual_clock.monotonic() == 10.0
    assert (pool.stats.connect_failures, pool.stats.gated, pool.stats.timeouts) == (3, 2, 0)
    backend.error = None
    await settled(pool, backend)


async def test_a_caller_in_line_is_served_before_a_newcomer_after_a_rebuild_makes_room(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    pool = pool_for(backend, PoolOptions(max_size=1))
    served: list[str] = []

    async def caller(name: str) -> None:
        async with pool.acquire():
            served.append(name)
            await virtual_clock.sleep(1.0)

    holder = asyncio.create_task(caller("holder"))
    await asyncio.sleep(0)
    in_line = asyncio.create_task(caller("in line"))
    await asyncio.sleep(0)
    pool.rebuild(options=PoolOptions(max_size=2))
    newcomer = asyncio.create_task(caller("newcomer"))
    await asyncio.gather(holder, in_line, newcomer)
    assert served == ["holder", "in line", "newcomer"]
    await settled(pool, backend)


async def test_callers_who_came_during_a_check_are_served_in_order(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)

    async def check(connection: int) -> bool:
        await virtual_clock.sleep(0.1)
        return True

    pool = pool_for(backend, PoolOptions(max_size=1, check_after_idle=0.0), check=check)
    async with pool.acquire():
        pass
    served: list[str] = []

    async def caller(name: str) -> None:
        async with pool.acquire():
            served.append(name)
            await virtual_clock.sleep(1.0)

    tasks = []
    for name in ("checking", "first", "second"):
        tasks.append(asyncio.create_task(caller(name)))
        await virtual_clock.sleep(0.01)
    await asyncio.gather(*tasks)
    assert served == ["checking", "first", "second"]
    assert backend.opened == [1]
    await settled(pool, backend)


async def test_a_free_place_handed_to_a_caller_cancelled_before_it_ran_goes_to_the_next(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    pool = pool_for(backend, PoolOptions(max_size=1, acquire_timeout=5.0))
    held = pool.acquire()
    await held.__aenter__()
    first = asyncio.create_task(pool.acquire().__aenter__())
    second = asyncio.create_task(pool.acquire().__aenter__())
    await asyncio.sleep(0)
    await held.__aexit__(KeyError, KeyError("lost"), None)  # the place goes to the first
    first.cancel()  # before it ran
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == 2  # the place went on
    assert virtual_clock.monotonic() == 0.0
    with pytest.raises(PoolTimeoutError):  # and no other place was made
        async with pool.acquire():
            pass
    assert (pool.stats.open, pool.stats.in_use) == (1, 1)
    pool._give_back(next(iter(pool._in_use)))
    await settled(pool, backend)


async def test_two_places_freed_at_once_go_to_two_callers_and_no_more(
    virtual_clock: VirtualClock,
) -> None:
    backend = Backend(virtual_clock)
    pool = pool_for(backend, PoolOptions(max_size=2, acquire_timeout=5.0))
    held = [pool.acquire(), pool.acquire()]
    for lease in held:
        await lease.__aenter__()
    waiting = [asyncio.create_task(pool.acquire().__aenter__()) for _ in range(2)]
    await asyncio.sleep(0)
    for lease in held:
        await lease.__aexit__(KeyError, KeyError("lost"), None)
    assert sorted(await asyncio.gather(*waiting)) == [3, 4]
    with pytest.raises(PoolTimeoutError):
        async with pool.acquire():
            pass
    assert (pool.stats.open, pool.stats.in_use) == (2, 2)
    for pooled in list(pool._in_use):
        pool._give_back(pooled)
    await settled(pool, backend)


async def test_a_check_that_ends_after_the_pool_closed_says_so(virtual_clock: VirtualClock) -> None:
    backend = Backend(virtual_clock)

    async def check(connection: int) -> bool:
        await virtual_clock.sleep(1.0)
        return False

    pool = pool_for(backend, PoolOptions(check_after_idle=0.0), check=check)
    async with pool.acquire():
        pass
    caller = asyncio.create_task(pool.acquire().__aenter__())
    await virtual_clock.sleep(0.5)
    await pool.aclose()
    with pytest.raises(PoolClosedError) as raised:
        await caller
    assert str(raised.value) == "the pool closed while acquire() waited"
    await settled(pool, backend)


async def test_a_place_freed_while_a_caller_checks_goes_to_the_first_in_line_only(
    virtual_clock: VirtualClock,
) -> None:
    """A block raises at the instant another caller's check passes: the freed place is the
    first waiting caller's, and the caller whose check passed takes nothing from the line."""
    backend = Backend(virtual_clock)

    async def check(connection: int) -> bool:
        await virtual_clock.sleep(0.1)
        return True

    pool = pool_for(backend, PoolOptions(max_size=2, check_after_idle=0.0), check=check)
    served: list[str] = []

    async def caller(name: str, raises: bool = False) -> None:
        with contextlib.suppress(KeyError):
            async with pool.acquire():
                served.append(name)
                await virtual_clock.sleep(0.1 if raises else 1.0)
                if raises:
                    raise KeyError("lost")

    tasks = [asyncio.create_task(caller("raises", raises=True))]
    await asyncio.sleep(0)  # it holds 1 and sleeps until 0.1 s
    async with pool.acquire():  # 2, idle after: checked when next lent
        pass
    for name in ("checks", "first", "second", "third"):
        tasks.append(asyncio.create_task(caller(name)))
        await asyncio.sleep(0)
    assert pool.stats.waiting == 3
    await asyncio.gather(*tasks)
    assert served == ["raises", "checks", "first", "second", "third"]
    await settled(pool, backend)
