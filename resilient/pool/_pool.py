"""A bounded pool of connections (or clients), every new one made through a connect gate.

:class:`BoundedPool` guarantees, on every path (success, an exception in the caller's block,
a cancellation at any await, a close):

- at most ``max_size`` connections are open or being opened at once;
- a connection is in one caller's hands at a time; one whose block raised, or that failed its
  check, is closed and never handed to anyone again;
- every connection it opens passes its :class:`~resilient.pool.ConnectGate`, so a refill after
  an outage, a warm-up or a rebuild is paced by the gate, never a storm;
- callers wait first come first served, at most ``max_waiting`` of them (one more is refused
  at once), each at most ``acquire_timeout``;
- idle connections are closed after ``idle_timeout`` (down to ``min_size``), and each one
  closes after its own jittered lifetime, when next idle, so connections opened together do
  not all expire together.

Only faults of the destination (``GateOptions.failures``, never an error resilient raised)
raised in a caller's block tell the gate a connection was lost; any exception discards the
connection.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Generic, TypeVar

from resilient import _validate
from resilient._deadline import Deadlines
from resilient._validate import Instance, shown
from resilient.clock import SYSTEM_CLOCK, Clock
from resilient.errors import (
    ArgumentTypeError,
    ConnectRefusedError,
    PoolClosedError,
    PoolExhaustedError,
    PoolTimeoutError,
)
from resilient.events import DEFAULT_EVENTS, Emitter, EventBus
from resilient.pool._events import (
    POOL_EVENT_SOURCE,
    ConnectionDiscarded,
    PoolClosed,
    PoolExhausted,
    PoolRebuilding,
)
from resilient.pool._gate import ConnectGate, is_fault
from resilient.pool._options import DEFAULT_POOL_OPTIONS, PoolOptions
from resilient.pool._records import Counters, Pooled, PoolStats

__all__ = ["BoundedPool"]

C = TypeVar("C")

_log = logging.getLogger("resilient.pool")


class BoundedPool(Generic[C]):
    """A pool of what ``connect()`` opens and ``close(connection)`` closes (see the module doc).

    ``async with pool.acquire() as connection: ...`` lends one. ``gate`` is the destination's
    :class:`~resilient.pool.ConnectGate`, shared with every other pool that targets it (see
    :func:`~resilient.pool.shared_gate`); by default the pool makes one of its own.
    ``check(connection)`` (optional, async) answers whether a connection idle for
    ``check_after_idle`` is still good before it is lent. Use one pool from one event loop.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[C]],
        close: Callable[[C], Awaitable[None] | None],
        options: PoolOptions = DEFAULT_POOL_OPTIONS,
        *,
        gate: ConnectGate | None = None,
        check: Callable[[C], Awaitable[bool]] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        events: EventBus = DEFAULT_EVENTS,
    ) -> None:
        for name, value in (("connect", connect), ("close", close)):
            if not callable(value):
                raise ArgumentTypeError(
                    f"BoundedPool.{name} must be a callable, got {shown(value)}"
                )
        if check is not None and not callable(check):
            raise ArgumentTypeError(
                f"BoundedPool.check must be a callable or None, got {shown(check)}"
            )
        self.options: PoolOptions = _validate.check(
            "BoundedPool.options", options, Instance(PoolOptions, "a PoolOptions")
        )
        _validate.check("BoundedPool.clock", clock, Instance(Clock, "a Clock"))
        _validate.check("BoundedPool.events", events, Instance(EventBus, "an EventBus"))
        if gate is None:
            gate = ConnectGate(f"pool of {_name(connect)}", clock=clock, events=events)
        self.gate: ConnectGate = _validate.check(
            "BoundedPool.gate", gate, Instance(ConnectGate, "a ConnectGate or None")
        )
        self._connect = connect
        self._close = close
        self._check = check
        self._clock = clock
        self._emit = Emitter(POOL_EVENT_SOURCE, events, clock)
        self._deadlines = Deadlines(clock, name="BoundedPool")
        self._random = random.Random()
        self._counts = Counters()
        self._idle: list[Pooled[C]] = []
        """Idle connections, the most recently given back last (lent first)."""
        self._in_use: set[Pooled[C]] = set()
        self._size = 0
        """Connections open or being opened: never above ``max_size``."""
        self._connecting = 0
        self._warming = 0
        """Warm-up tasks still waiting for their turn."""
        self._waiters: collections.deque[asyncio.Future[Pooled[C] | None]] = collections.deque()
        self._reserved = 0
        """Free places handed to waiters that have not run yet: kept for them, so that a
        caller who comes meanwhile cannot take the place and send them back in line."""
        self._generation = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._housekeeper: asyncio.Task[None] | None = None
        self._closed = False

    # -- lending -------------------------------------------------------------------------------

    def acquire(self) -> _Lease[C]:
        """``async with pool.acquire() as connection``: lend a connection for the block. It
        goes back to the pool when the block ends, and is closed instead when the block
        raised (or was cancelled). Raises :class:`~resilient.errors.PoolTimeoutError`,
        :class:`~resilient.errors.PoolExhaustedError`,
        :class:`~resilient.errors.PoolClosedError`, or what the gate or ``connect`` raised."""
        return _Lease(self)

    @property
    def stats(self) -> PoolStats:
        counts = self._counts
        return PoolStats(
            open=self._size - self._connecting,
            idle=len(self._idle),
            in_use=len(self._in_use),
            connecting=self._connecting,
            waiting=len(self._waiters),
            connects=counts.connects,
            connect_failures=counts.connect_failures,
            gated=counts.gated,
            churned=counts.churned,
            discarded=counts.discarded,
            expired=counts.expired,
            idle_closed=counts.idle_closed,
            timeouts=counts.timeouts,
            exhausted=counts.exhausted,
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def _lend_idle(self) -> Pooled[C] | None:
        """The fast path of a lend: the most recently used idle connection, when nobody waits
        and it needs neither a check nor closing; None sends the caller down :meth:`_lend`.
        Measured by ``bench/bench_pool.py``: an acquire and release of an idle connection
        cost 9.1 us through :meth:`_lend` (its deadline scope), 1.6 us here."""
        idle = self._idle
        if not idle or self._waiters or self._closed:
            return None
        pooled = idle[-1]
        now = self._clock.monotonic()
        if pooled.retire or now >= pooled.expires_at:
            return None
        if self._check is not None and now - pooled.last_used >= self.options.check_after_idle:
            return None
        idle.pop()
        self._in_use.add(pooled)
        return pooled

    async def _lend(self) -> Pooled[C]:
        if self._closed:
            raise PoolClosedError("the pool is closed: acquire() refused")
        if self._housekeeper is None:
            self._start()
        timeout = self.options.acquire_timeout
        deadline = self._clock.monotonic() + timeout
        scope = self._deadlines.within(timeout)
        try:
            async with scope:
                return await self._lend_within(deadline)
        except TimeoutError:
            if not scope.expired:
                raise  # the connect attempt's own timeout: the destination's
            self._counts.timeouts += 1
            raise PoolTimeoutError(
                f"no connection within acquire_timeout {timeout:g}s: {self._size} open or "
                f"opening of max_size {self.options.max_size}, {len(self._waiters)} waiting, "
                f"{self.gate.waiting} waiting on the gate"
            ) from None

    async def _lend_within(self, deadline: float) -> Pooled[C]:
        woken = False
        while True:
            if self._closed:
                raise PoolClosedError("the pool closed while acquire() waited")
            if not self._waiters or woken:
                pooled = self._take_idle()
                if pooled is not None:
                    if await self._passes_check(pooled):
                        if self._waiters and self._size + self._reserved < self.options.max_size:
                            self._wake_one(None)  # a place this caller did not need
                        return pooled
                    woken = True  # the place of the connection that failed is this caller's
                    continue
                if self._size + self._reserved < self.options.max_size:
                    return await self._open(deadline)
            if len(self._waiters) >= self.options.max_waiting:
                self._counts.exhausted += 1
                self._emit(PoolExhausted(len(self._waiters), len(self._in_use)))
                raise PoolExhaustedError(
                    f"{len(self._waiters)} callers already wait for a connection "
                    f"(max_waiting {self.options.max_waiting}): acquire() refused"
                )
            handed = await self._wait_in_line()
            if handed is not None:
                return handed
            self._reserved -= 1  # the place kept for this caller is its own now
            woken = True

    def _take_idle(self) -> Pooled[C] | None:
        now = self._clock.monotonic()
        idle = self._idle
        while idle:
            pooled = idle.pop()
            if pooled.retire or now >= pooled.expires_at:
                self._retire(pooled)
                continue
            self._in_use.add(pooled)
            return pooled
        return None

    async def _passes_check(self, pooled: Pooled[C]) -> bool:
        """Whether a connection taken from the idle ones may be lent: checked when it was idle
        for ``check_after_idle``; one that fails the check (or raises in it, or answers
        anything but a bool) is discarded, and its place stays with this caller. Only a check
        that answers False, or raises a fault of the destination (``GateOptions.failures``),
        tells the gate the connection was lost: a check's own bug is not the destination's."""
        check = self._check
        idle_for = self._clock.monotonic() - pooled.last_used
        if check is None or idle_for < self.options.check_after_idle:
            return True
        try:
            good = await check(pooled.connection)
        except Exception as error:
            lost = is_fault(error, self.gate.options.failures)
            reason = f"check raised {type(error).__name__}"
            self._discard(pooled, reason, lost=lost, hand_on=False)
            return False
        except BaseException as error:  # cancelled, or interrupted: no answer
            self._discard(pooled, f"{type(error).__name__} in its check", lost=False)
            raise
        if good is True:
            return True
        if good is False:
            self._discard(pooled, "check failed", lost=True, hand_on=False)
        else:
            reason = f"check answered {shown(good)}, not a bool"
            self._discard(pooled, reason, lost=False, hand_on=False)
        return False

    async def _open(self, deadline: float) -> Pooled[C]:
        """Open a connection for this caller (its place within ``max_size`` is taken first);
        the gate refuses at once when it cannot let it through by ``deadline``."""
        self._size += 1
        self._connecting += 1
        generation = self._generation
        try:
            left = max(0.0, deadline - self._clock.monotonic())
            connection = await self.gate.connect(self._connect, timeout=left)
        except BaseException as error:
            self._size -= 1
            self._connecting -= 1
            if isinstance(error, Exception):
                self._counts.connect_failures += 1
                if isinstance(error, ConnectRefusedError):
                    self._counts.gated += 1
            self._wake_one(None)
            raise
        self._connecting -= 1
        self._counts.connects += 1
        pooled = self._pooled(connection, generation)
        if self._closed:  # closed while it connected: it is nobody's
            self._size -= 1
            self._close_later(pooled.connection)
            raise PoolClosedError("the pool closed while acquire() connected")
        self._in_use.add(pooled)
        return pooled

    def _pooled(self, connection: C, generation: int) -> Pooled[C]:
        """``connection``, opened now with the configuration of ``generation`` (the one when
        its connect started: a rebuild during the connect retires it too)."""
        now = self._clock.monotonic()
        options = self.options
        lifetime = options.max_lifetime * (1 - options.lifetime_jitter * self._random.random())
        return Pooled(connection, now, now + lifetime, generation)

    async def _wait_in_line(self) -> Pooled[C] | None:
        """Wait for a connection handed over (returned) or a free place (None)."""
        future: asyncio.Future[Pooled[C] | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            return await future
        except BaseException:
            if not future.done() or future.cancelled():
                with contextlib.suppress(ValueError):
                    self._waiters.remove(future)
            elif future.exception() is None:
                handed = future.result()
                if handed is None:
                    self._reserved -= 1
                    self._wake_one(None)  # pass the free place on
                else:
                    self._in_use.discard(handed)
                    self._give_back(handed)
            raise

    def _wake_one(self, pooled: Pooled[C] | None) -> bool:
        """Hand ``pooled`` (or a free place) to the first caller still waiting."""
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                if pooled is None:
                    self._reserved += 1
                else:
                    self._in_use.add(pooled)
                future.set_result(pooled)
                return True
        return False

    # -- giving back ---------------------------------------------------------------------------

    def _give_back(self, pooled: Pooled[C]) -> None:
        """The block ended normally: lend the connection again, keep it idle, or close it."""
        self._in_use.discard(pooled)
        now = self._clock.monotonic()
        pooled.last_used = now
        if self._closed or pooled.retire or now >= pooled.expires_at:
            self._retire(pooled)
            return
        if not self._wake_one(pooled):
            self._idle.append(pooled)

    def _discard(self, pooled: Pooled[C], reason: str, *, lost: bool, hand_on: bool = True) -> None:
        """Close a connection that raised or failed its check; never lend it again. ``lost``:
        the destination broke it (the gate judges whether that was churn). ``hand_on``: its
        place goes to the first caller waiting (else it stays with the caller at hand)."""
        self._in_use.discard(pooled)
        self._size -= 1
        self._counts.discarded += 1
        now = self._clock.monotonic()
        if lost and self.gate.lost(pooled.opened_at):
            self._counts.churned += 1
        self._emit(ConnectionDiscarded(reason, now - pooled.opened_at))
        if hand_on:
            self._wake_one(None)
        self._close_later(pooled.connection)  # last: a close() that raises changes nothing

    def _retire(self, pooled: Pooled[C]) -> None:
        """Close a connection by the pool's own policy (lifetime, rebuild, close)."""
        self._size -= 1
        self._counts.expired += 1
        self._wake_one(None)
        self._close_later(pooled.connection)  # last: a close() that raises changes nothing

    def _close_later(self, connection: C) -> None:
        """Close ``connection`` in a task of the pool's own: no caller's path waits on it or
        can be cancelled half way through it. A close may take the gate's ``connect_timeout``
        (as redis-py bounds its disconnect by its connect timeout); past it, it is cancelled
        and the connection dropped, so that a close that hangs holds up no :meth:`aclose`."""
        try:
            closing = self._close(connection)
        except Exception:
            _log.exception("BoundedPool: close() raised; the connection is dropped")
            return
        if inspect.isawaitable(closing):
            task = asyncio.get_running_loop().create_task(self._closing(closing))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _closing(self, closing: Awaitable[Any]) -> None:
        limit = self.gate.options.connect_timeout
        scope = self._deadlines.within(limit)
        try:
            async with scope:
                await closing
        except Exception:
            if scope.expired:
                _log.error("BoundedPool: close() took over %gs; the connection is dropped", limit)
            else:
                _log.exception("BoundedPool: close() raised; the connection is dropped")

    # -- housekeeping ----------------------------------------------------------------------------

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._housekeeper = loop.create_task(self._housekeep(), name="BoundedPool.housekeeper")
        self._warm(first=True)

    def _warm(self, *, first: bool) -> None:
        """Open connections up to ``min_size``, each through the gate (after a random delay
        within ``warm_jitter`` the first time); each looks again, when its turn comes, whether
        the pool still lacks it."""
        options = self.options
        missing = options.min_size - self._size - self._warming
        loop = asyncio.get_running_loop()
        for _ in range(max(0, missing)):
            delay = options.warm_jitter * self._random.random() if first else 0.0
            self._warming += 1
            task = loop.create_task(self._open_spare(delay), name="BoundedPool.warm")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _open_spare(self, delay: float) -> None:
        """Open one connection for the pool, if it still lacks one, and keep it idle."""
        try:
            if delay:
                await self._clock.sleep(delay)
        finally:
            self._warming -= 1
        options = self.options
        if self._closed or self._size >= options.min_size:
            return
        if self._size + self._reserved >= options.max_size:
            return  # the free places are kept for callers handed them
        self._size += 1
        self._connecting += 1
        generation = self._generation
        try:
            connection = await self.gate.connect(self._connect)
        except Exception:
            self._size -= 1
            self._connecting -= 1
            self._counts.connect_failures += 1
            self._wake_one(None)
            return
        except BaseException:
            self._size -= 1
            self._connecting -= 1
            self._wake_one(None)
            raise
        self._connecting -= 1
        self._counts.connects += 1
        self._give_back(self._pooled(connection, generation))

    async def _housekeep(self) -> None:
        while not self._closed:
            await self._clock.sleep(self.options.housekeeping)
            self.housekeep()

    def housekeep(self) -> None:
        """One housekeeping pass (the pool runs one every ``housekeeping`` seconds): close
        idle connections past ``idle_timeout`` (down to ``min_size``) and past their lifetime,
        retire ``rebuild_step`` connections of an older configuration, and warm up to
        ``min_size``."""
        if self._closed:
            return
        now = self._clock.monotonic()
        options = self.options
        keep: list[Pooled[C]] = []
        for pooled in self._idle:  # oldest use first
            if now >= pooled.expires_at:
                self._size -= 1
                self._counts.expired += 1
                self._close_later(pooled.connection)
            elif now - pooled.last_used >= options.idle_timeout and self._size > options.min_size:
                self._size -= 1
                self._counts.idle_closed += 1
                self._close_later(pooled.connection)
            else:
                keep.append(pooled)
        self._idle = keep
        step = options.rebuild_step
        for pooled in [*self._idle, *self._in_use]:
            if step == 0:
                break
            if pooled.generation < self._generation and not pooled.retire:
                pooled.retire = True
                step -= 1
        for pooled in [pooled for pooled in self._idle if pooled.retire]:
            self._idle.remove(pooled)
            self._retire(pooled)
        self._warm(first=False)

    def rebuild(self, connect: Callable[[], Awaitable[C]] | None = None) -> None:
        """A configuration changed: from now on new connections are made with ``connect``
        (when given), and the open ones are retired ``rebuild_step`` per housekeeping pass
        (the first pass now), each replaced through the gate when needed. Never all at once."""
        if connect is not None:
            if not callable(connect):
                raise ArgumentTypeError(
                    f"BoundedPool.rebuild(connect) must be a callable, got {shown(connect)}"
                )
            self._connect = connect
        self._generation += 1
        self._emit(PoolRebuilding(self._size - self._connecting))
        self.housekeep()

    async def aclose(self) -> None:
        """Refuse new acquires and waiting callers, close idle connections now and lent ones
        when they are given back, and stop the pool's tasks. Cancelled, it stops waiting but
        the closes it started go on; called again, it waits for the closes of connections
        given back since."""
        first = not self._closed
        self._closed = True
        closed_idle = 0
        if first:
            while self._waiters:
                future = self._waiters.popleft()
                if not future.done():
                    future.set_exception(PoolClosedError("the pool closed while acquire() waited"))
            idle, self._idle = self._idle, []
            closed_idle = len(idle)
            for pooled in idle:
                self._retire(pooled)
            if self._housekeeper is not None:
                self._housekeeper.cancel()
            for task in list(self._tasks):
                if task.get_name() == "BoundedPool.warm":
                    task.cancel()
        pending = [task for task in (self._housekeeper, *self._tasks) if task is not None]
        while pending:
            # wait(), not gather(): an aclose() cancelled (a shutdown that gives up) must not
            # cancel the closes it started, or their connections are never closed.
            await asyncio.wait(pending)
            # Closes of connections given back meanwhile: stopping the deadlines now would
            # leave them without theirs.
            pending = list(self._tasks)
        if not self._deadlines.pending:  # a caller still acquiring keeps its acquire_timeout
            await self._deadlines.aclose()
        if first:
            self._emit(PoolClosed(closed_idle, len(self._in_use)))

    async def __aenter__(self) -> BoundedPool[C]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        stats = self.stats
        return (
            f"BoundedPool(open={stats.open}, idle={stats.idle}, in_use={stats.in_use}, "
            f"waiting={stats.waiting}, max_size={self.options.max_size})"
        )


class _Lease(Generic[C]):
    """``async with pool.acquire() as connection`` (see :meth:`BoundedPool.acquire`)."""

    __slots__ = ("_pool", "_pooled")

    def __init__(self, pool: BoundedPool[C]) -> None:
        self._pool = pool
        self._pooled: Pooled[C] | None = None

    async def __aenter__(self) -> C:
        if self._pooled is not None:
            raise RuntimeError("a lease is entered once: call pool.acquire() again")
        pooled = self._pool._lend_idle()
        if pooled is None:
            pooled = await self._pool._lend()
        self._pooled = pooled
        return pooled.connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        pooled, self._pooled = self._pooled, None
        assert pooled is not None
        if exc is None:
            self._pool._give_back(pooled)
        else:
            pool = self._pool
            lost = is_fault(exc, pool.gate.options.failures)
            pool._discard(pooled, f"{type(exc).__name__} raised in use", lost=lost)


def _name(connect: Callable[..., object]) -> str:
    return getattr(connect, "__qualname__", None) or type(connect).__name__
