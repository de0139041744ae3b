"""BoundedPool and ConnectGate under random programs (hypothesis) and cancellation at every
await: the bounds hold, callers are served in order, nothing is left held.

Every test runs in virtual time (an autojumping :class:`VirtualClock`), unless it says.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient.clock import VirtualClock
from resilient.errors import ConnectRefusedError
from resilient.pool import (
    BoundedPool,
    ConnectGate,
    GateOptions,
    PoolOptions,
)
from resilient.ratelimit import Rate
from tests.resilient.pool_world import (
    Backend,
    assert_nothing_held,
    closes_run,
    pool_for,
    quiet,
    settled,
)

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


async def test_a_warming_pool_behind_a_hanging_destination_lets_its_gate_close() -> None:
    """Found by the program above: with the pool warming up behind a destination that hangs,
    a new attempt started before the last one ended, and the gate's close waited for ever.
    A closed gate refuses every later caller, so the attempts in progress drain."""
    steps: list[tuple[str, Any, float]] = [
        ("connect", "bug", 0.0),
        ("call", "ok", 0.0),
        ("sleep", "", 1.0),
        ("call", "ok", 0.0),
        ("connect", "hang", 0.0),
        ("aclose", "gate", 0.0),
    ]
    await _run_program(steps, 2, 2, 0, 2, 1)


async def test_a_closed_gate_refuses_every_later_caller() -> None:
    clock = VirtualClock(autojump=True)
    gate = ConnectGate("db", clock=clock, events=quiet())
    await gate.aclose()

    async def open_connection() -> str:
        return "connection"

    with pytest.raises(ConnectRefusedError, match="gate closed"):
        await gate.connect(open_connection)
    assert gate.stats.refused == 1
