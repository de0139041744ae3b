"""How a :class:`~resilient.pool.BoundedPool` lends and takes back its connections: the pool's
state, the line of callers, opening through the gate, checks, discards and closes.

The guarantees are the pool's (``_pool.py``); this is the machinery that keeps them: every
place within ``max_size`` is counted before any await (``_size``, ``_connecting``), a free place
handed to a waiter is kept for it until it runs (``_reserved``), and a connection is closed in
a task of the pool's own, last, so that no close holds up or breaks a caller's path.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from resilient._deadline import Deadlines
from resilient._validate import shown
from resilient.clock import Clock
from resilient.errors import (
    ConnectRefusedError,
    PoolClosedError,
    PoolExhaustedError,
    PoolTimeoutError,
)
from resilient.events import Emitter, EventBus
from resilient.pool._events import POOL_EVENT_SOURCE, ConnectionDiscarded, PoolExhausted
from resilient.pool._gate import ConnectGate, is_fault
from resilient.pool._options import PoolOptions
from resilient.pool._records import Counters, Pooled

__all__ = ["Lending"]

C = TypeVar("C")

_log = logging.getLogger("resilient.pool")


class Lending(Generic[C]):
    """The state of a pool and how it lends; :class:`~resilient.pool.BoundedPool` is its public
    surface, and checks every argument before this class sees it."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[C]],
        close: Callable[[C], Awaitable[None] | None],
        options: PoolOptions,
        gate: ConnectGate,
        check: Callable[[C], Awaitable[bool]] | None,
        clock: Clock,
        events: EventBus,
    ) -> None:
        self.options = options
        self.gate = gate
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

    def _start(self) -> None:  # the housekeeping of the public pool
        raise NotImplementedError

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
        and the connection dropped, so that a close that hangs holds up no
        :meth:`~resilient.pool.BoundedPool.aclose`."""
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
