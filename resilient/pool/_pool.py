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
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Generic, TypeVar

from resilient import _validate
from resilient._validate import Instance, shown
from resilient.clock import SYSTEM_CLOCK, Clock
from resilient.errors import ArgumentTypeError, PoolClosedError
from resilient.events import DEFAULT_EVENTS, EventBus
from resilient.pool._events import PoolClosed, PoolRebuilding
from resilient.pool._gate import ConnectGate, is_fault
from resilient.pool._lending import Lending
from resilient.pool._options import DEFAULT_POOL_OPTIONS, PoolOptions
from resilient.pool._records import Pooled, PoolStats

__all__ = ["BoundedPool"]

C = TypeVar("C")


class BoundedPool(Lending[C]):
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
        options = _validate.check(
            "BoundedPool.options", options, Instance(PoolOptions, "a PoolOptions")
        )
        _validate.check("BoundedPool.clock", clock, Instance(Clock, "a Clock"))
        _validate.check("BoundedPool.events", events, Instance(EventBus, "an EventBus"))
        if gate is None:
            gate = ConnectGate(f"pool of {_name(connect)}", clock=clock, events=events)
        gate = _validate.check(
            "BoundedPool.gate", gate, Instance(ConnectGate, "a ConnectGate or None")
        )
        super().__init__(connect, close, options, gate, check, clock, events)

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

    def rebuild(
        self,
        connect: Callable[[], Awaitable[C]] | None = None,
        options: PoolOptions | None = None,
    ) -> None:
        """A configuration changed: from now on new connections are made with ``connect``
        and the pool keeps ``options`` (each when given), and the open connections are retired
        ``rebuild_step`` per housekeeping pass (the first pass now), each replaced through the
        gate when needed. Never all at once: a rebuild costs the destination no more connects
        than the gate allows. Connections lent now go on until given back."""
        if connect is not None and not callable(connect):
            raise ArgumentTypeError(
                f"BoundedPool.rebuild(connect) must be a callable, got {shown(connect)}"
            )
        if options is not None:
            options = _validate.check(
                "BoundedPool.rebuild(options)", options, Instance(PoolOptions, "a PoolOptions")
            )
            self.options = options
        if connect is not None:
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
