"""The release queue's public surface: submitting, pausing, following a breaker, draining,
closing, and what a caller can read. Everything a caller passes is checked here, before the
scheduler (``_scheduler.py``, where the order of the checks before each start is told) sees
it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from resilient._validate import Instance, Integer, Text, check, shown
from resilient.clock import SYSTEM_CLOCK, Clock
from resilient.errors import ArgumentTypeError, ArgumentValueError, QueueClosedError
from resilient.events import DEFAULT_EVENTS, EventBus
from resilient.release._commit import (
    RevalidateCallback,
    StateSource,
)
from resilient.release._events import (
    QueueClosed,
)
from resilient.release._options import DEFAULT_RELEASE_OPTIONS, ReleaseOptions
from resilient.release._scheduler import Scheduler
from resilient.release._ticket import HERE, RUNNING, Ticket
from resilient.release._types import (
    Brake,
    check_run,
)

if TYPE_CHECKING:
    from resilient.breaker import CircuitBreaker

__all__ = ["ReleaseQueue"]

T = TypeVar("T")

_KEY = Text()
_VERSION = Integer()
_UNITS = Integer(min=0)
_FLAG = Instance(bool, "a bool")


class ReleaseQueue(Scheduler):
    """A queue of actions that change capacity, released safely (see the module doc).

    ``state`` (required) returns, or awaits, a :class:`ReleaseState`: it is read before every
    start. ``revalidate(action, state)`` (optional, sync or async) judges each action at
    commit time. Use one queue from one event loop; :meth:`submit` needs a running loop.
    """

    def __init__(
        self,
        state: StateSource,
        options: ReleaseOptions = DEFAULT_RELEASE_OPTIONS,
        *,
        revalidate: RevalidateCallback | None = None,
        clock: Clock = SYSTEM_CLOCK,
        events: EventBus = DEFAULT_EVENTS,
    ) -> None:
        if not callable(state):
            raise ArgumentTypeError(
                "ReleaseQueue.state must be a callable returning (or awaiting) a "
                f"ReleaseState, got {shown(state)}"
            )
        options = check(
            "ReleaseQueue.options", options, Instance(ReleaseOptions, "a ReleaseOptions")
        )
        if revalidate is not None and not callable(revalidate):
            raise ArgumentTypeError(
                f"ReleaseQueue.revalidate must be a callable or None, got {shown(revalidate)}"
            )
        check("ReleaseQueue.clock", clock, Instance(Clock, "a Clock"))
        check("ReleaseQueue.events", events, Instance(EventBus, "an EventBus"))
        super().__init__(state, options, revalidate, clock, events)
        self._last_run: object = None
        """The last ``run`` that passed :func:`check_run`: the same coroutine function
        submitted again (the common case) skips the check."""

    # -- public API ---------------------------------------------------------------------------

    def submit(
        self,
        key: str,
        run: Callable[[], Awaitable[T]],
        *,
        based_on: int,
        takes_out: int = 0,
        restores: bool = False,
    ) -> Ticket[T]:
        """Queue ``run`` (an async callable, no argument) under ``key``, computed from state
        version ``based_on``; it takes ``takes_out`` units out of service while it runs
        (``restores=True``: it adds capacity, takes nothing out, and goes first).

        A waiting (not yet started) action of the same key is superseded: the new one takes
        its place in line. A running one is not touched: the new one waits for it to end.
        Raises :class:`~resilient.errors.ArgumentError` for a bad argument (nothing changed)
        and :class:`~resilient.errors.QueueClosedError` once the queue is closed.
        """
        if type(key) is not str:
            key = check("ReleaseQueue.submit(key)", key, _KEY)
        if type(based_on) is not int:
            based_on = check("ReleaseQueue.submit(based_on)", based_on, _VERSION)
        if type(takes_out) is not int or takes_out < 0:
            takes_out = check("ReleaseQueue.submit(takes_out)", takes_out, _UNITS)
        if restores is not False and restores is not True:
            check("ReleaseQueue.submit(restores)", restores, _FLAG)
        if restores and takes_out:
            raise ArgumentValueError(
                "ReleaseQueue.submit(takes_out) must be 0 for an action that restores, "
                f"got {takes_out!r}"
            )
        if run is not self._last_run:
            check_run("ReleaseQueue.submit(run)", run)
            self._last_run = run
        if self._closed:
            raise QueueClosedError(f"the release queue is closed: submit({shown(key)}) refused")
        ticket: Ticket[T] = Ticket(key, run, based_on, takes_out, restores, self._clock.monotonic())
        line = self._line
        if key in line.pending or key in self._running:
            old = line.place(ticket, self._running)
            if old is not None:
                self._ledger.superseded(old, ticket)
        else:  # Line.place, inlined for the common case: a key with nothing waiting or running
            line.pending[key] = ticket
            ticket._entry = HERE
            (line.restores if restores else line.removals).append(ticket)
        self.stats.submitted += 1
        wakeup = self._wakeup  # _wake, inlined
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)
        elif self._scheduler is None:
            self._scheduler = asyncio.get_running_loop().create_task(
                self._schedule(), name="ReleaseQueue.scheduler"
            )
        return ticket

    def pause(self, reason: str) -> None:
        """Start nothing until :meth:`resume` (running actions go on). ``reason`` is told in
        the ``paused`` event."""
        self._holds.pause(reason, len(self._line))

    def resume(self) -> None:
        """Undo :meth:`pause`. The queue starts again at ``ramp_start`` per interval, and
        every action is revalidated against the state read at its own start. A followed
        breaker that is not closed still holds it."""
        self._holds.resume(len(self._line))

    def follow(self, breaker: CircuitBreaker) -> Callable[[], None]:
        """Hold the queue while ``breaker`` is not closed (open or half-open); returns a
        function that stops following it. The breaker's state is read before every start and
        once an interval while it holds the queue (see ``_hold.py``)."""
        return self._holds.follow(breaker, lambda: len(self._line))

    async def drain(self) -> None:
        """Return once nothing waits or runs (a paused queue with actions waits for its
        resume, or its close)."""
        await self._ledger.drained()

    async def close(self, *, cancel: bool = False) -> tuple[Ticket[Any], ...]:
        """Stop: :meth:`submit` raises from now on, every action not started ends as
        :class:`Dropped` with reason ``closed`` (they are returned, in line order), and the
        queue's tasks end. Running actions run to their end (a failure is then not retried),
        unless ``cancel``: they are cancelled and end as :class:`Failed` with the
        ``CancelledError``. A second call returns ``()``."""
        check("ReleaseQueue.close(cancel)", cancel, _FLAG)
        me = asyncio.current_task()
        pool = self._pool
        if self._closed:
            if cancel:
                self._cancelling = True
                pool.cancel(me)
            await pool.join(me)
            return ()
        self._closed = True
        left = self._line.clear()
        cancelled = 0
        if cancel:
            cancelled = sum(1 for ticket in self._running.values() if ticket._state == RUNNING)
            while pool.ready:
                ticket = pool.ready.popleft()
                self._release(ticket)
                left.append(ticket)
            self._cancelling = True
            pool.cancel(me)
        for ticket in left:
            self._ledger.dropped(ticket, "closed")
        scheduler = self._scheduler
        if scheduler is not None and scheduler is not me and not scheduler.done():
            scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scheduler
        await pool.join(me)
        if me is not scheduler:
            await self._deadlines.aclose()
        self._emit(QueueClosed(len(left), cancelled))
        self._ledger.notify()
        return tuple(left)

    async def __aenter__(self) -> ReleaseQueue:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close; running actions are cancelled when the block raised."""
        await self.close(cancel=exc_type is not None)

    @property
    def queued(self) -> int:
        """Actions not started: in line, parked behind their key, or in backoff."""
        return len(self._line)

    @property
    def in_flight(self) -> int:
        """Actions committed and not ended."""
        return self._in_flight

    @property
    def units_out(self) -> int:
        """Units the committed actions take out of service."""
        return self._units

    @property
    def paused(self) -> bool:
        """True while :meth:`pause` or a followed breaker holds the queue."""
        return self._holds.current() is not None

    @property
    def pause_reason(self) -> str | None:
        return self._holds.current()

    @property
    def brake(self) -> Brake:
        """The health brake, as of the last state read."""
        return self._checks.brake

    @property
    def ramp(self) -> int:
        """Starts allowed per interval now (the slow-start allowance)."""
        return self._pacer.allowance

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return (
            f"ReleaseQueue(queued={self.queued}, in_flight={self._in_flight}, "
            f"paused={self.paused}, brake={self.brake.value}, closed={self._closed})"
        )
