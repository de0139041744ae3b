"""The release queue: actions coalesced by key, revalidated at commit time, released at a
pace, within a disruption budget, under a health brake.

:class:`ReleaseQueue` runs one scheduler task, which starts actions one at a time in line
order (restores first, then the rest, each lane first in first out; see ``_line.py``), and
worker tasks that run them (``_pool.py``). Before each start the scheduler checks, in this
order:

1. the queue is not paused (by :meth:`~ReleaseQueue.pause` or a followed breaker);
2. fewer than ``max_in_flight`` actions run;
3. the sliding window allows a start (``batch`` per ``interval``, ramped after a pause);
4. the state can be read, now (``_commit.py``; else nothing starts, and it is read again
   one interval later);
5. the brake: above ``halt_above`` unhealthy no removal starts, above ``slow_above`` removals
   start ``slow_factor`` times slower; restores pass;
6. revalidation: an action older than ``max_age`` or computed from an older version than the
   state's is dropped, or replanned by the ``revalidate`` callback, which also sees every
   fresh action and may drop it;
7. the budget: ``out_of_service`` + the ``takes_out`` of the running actions + this one's
   must not exceed the budget, or the action waits (restores and actions that take nothing
   out pass; one larger than the whole budget is dropped: it could never start).

An action that waits keeps its place, and the ones behind it wait too (no overtaking: a large
drain is never starved by small ones, and the order of intent is kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from resilient._deadline import Deadlines
from resilient._validate import Instance, Integer, Text, check, shown
from resilient.clock import SYSTEM_CLOCK, Clock
from resilient.errors import ArgumentTypeError, ArgumentValueError, QueueClosedError
from resilient.events import DEFAULT_EVENTS, Emitter, EventBus
from resilient.release._commit import CommitChecks, RevalidateCallback, StateSource, described
from resilient.release._events import (
    RELEASE_EVENT_SOURCE,
    QueueClosed,
)
from resilient.release._hold import Holds
from resilient.release._ledger import Ledger
from resilient.release._line import Line, Slot
from resilient.release._options import DEFAULT_RELEASE_OPTIONS, ReleaseOptions
from resilient.release._pacing import Pacer, backoff, budget_limit
from resilient.release._pool import WorkerPool
from resilient.release._ticket import READY, RUNNING, Ticket
from resilient.release._types import (
    Brake,
    ReleaseState,
    ReleaseStats,
    Replan,
    check_run,
)

if TYPE_CHECKING:
    from resilient.breaker import CircuitBreaker

__all__ = ["ReleaseQueue"]

T = TypeVar("T")

_log = logging.getLogger("resilient.release")

_KEY = Text()
_VERSION = Integer()
_UNITS = Integer(min=0)
_FLAG = Instance(bool, "a bool")
_REASON = Text(non_empty=True)
_OFF, _SLOWED, _HALTED = Brake.OFF, Brake.SLOWED, Brake.HALTED


class ReleaseQueue:
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
        self.options: ReleaseOptions = check(
            "ReleaseQueue.options", options, Instance(ReleaseOptions, "a ReleaseOptions")
        )
        if revalidate is not None and not callable(revalidate):
            raise ArgumentTypeError(
                f"ReleaseQueue.revalidate must be a callable or None, got {shown(revalidate)}"
            )
        check("ReleaseQueue.clock", clock, Instance(Clock, "a Clock"))
        check("ReleaseQueue.events", events, Instance(EventBus, "an EventBus"))
        self.stats = ReleaseStats()
        self._clock = clock
        self._emit = Emitter(RELEASE_EVENT_SOURCE, events, clock)
        self._deadlines = Deadlines(clock, name="release")
        self._pacer = Pacer(options)
        self._checks = CommitChecks(
            state, revalidate, options, self._pacer, self._deadlines, self._emit, self.stats
        )
        self._random = random.Random()
        self._line = Line()
        self._running: dict[str, Ticket[Any]] = {}
        """The committed action of each key (starting or running): at most one per key."""
        self._pool = WorkerPool(self._execute)
        self._in_flight = 0
        self._units = 0
        self._scheduler: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._wake_on_end = False
        self._ledger = Ledger(self.stats, self._emit, clock, options.done_events, self._idle)
        self._holds = Holds(clock, self._emit, self._pacer, self.stats, self._wake)
        self._closed = False
        self._cancelling = False
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
        old = self._line.place(ticket, self._running)
        if old is not None:
            self._ledger.superseded(old, ticket)
        self.stats.submitted += 1
        if self._scheduler is None:
            self._scheduler = asyncio.get_running_loop().create_task(
                self._schedule(), name="ReleaseQueue.scheduler"
            )
        else:
            self._wake()
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

    def _idle(self) -> bool:
        return not self._line.pending and not self._running

    # -- the scheduler -------------------------------------------------------------------------

    async def _schedule(self) -> None:
        try:
            await self._commit_loop()
        except Exception as error:  # a bug here must not leave actions waiting for ever
            _log.exception("the release queue's scheduler failed; the queue is closed")
            self._closed = True
            reason = f"closed: the release queue failed ({described(error)})"
            left = self._line.clear()
            for ticket in left:
                self._ledger.dropped(ticket, reason)
            self._emit(QueueClosed(len(left), 0))

    async def _commit_loop(self) -> None:
        options = self.options
        clock = self._clock
        pacer = self._pacer
        checks = self._checks
        line = self._line
        holds = self._holds
        interval = options.interval
        slow_window = interval * options.slow_factor
        while not self._closed:
            now = clock.monotonic()
            due = line.next_due()
            if due is not None and due <= now:
                line.admit_due(now)
                due = line.next_due()
            wait = None if due is None else due - now
            slot = line.head()
            if slot is None:
                await self._wait(wait)
                continue
            ticket = slot.ticket
            assert ticket is not None
            held = (holds.manual is not None or holds.followed) and holds.update(len(line))
            if held:
                await self._wait(None if holds.manual is not None else interval)
                continue
            if self._in_flight >= options.max_in_flight:
                self._wake_on_end = True
                await self._wait(wait)
                continue
            braked = not ticket._restores and checks.brake is not _OFF
            delay = pacer.delay(now, slow_window if braked else interval)
            if delay > 0:
                await self._wait(delay if wait is None else min(delay, wait))
                continue
            state = await checks.read_state(now)
            if state is None:
                await self._wait(interval)
                continue
            if self._closed or slot.ticket is not ticket or holds.manual is not None:
                continue  # changed while the state was read: look again
            now = clock.monotonic()
            brake = checks.update_brake(state, now)
            if not ticket._restores:
                if brake is _HALTED:
                    await self._wait(interval)
                    continue
                if brake is _SLOWED and pacer.delay(now, slow_window) > 0:
                    continue
            judged = await checks.judge(ticket, state, now)
            if self._closed or slot.ticket is not ticket or holds.manual is not None:
                continue  # changed while the callback ran: look again
            if judged is not None:
                if isinstance(judged, str):
                    line.take(slot, ticket)
                    self._ledger.dropped(ticket, judged)
                    continue
                ticket = self._replan(slot, ticket, judged, state, now)
                if slot.ticket is not ticket:
                    continue  # the fresh action went to the other lane
            if not ticket._restores and ticket._takes_out:
                limit = budget_limit(options, state)
                if ticket._takes_out > limit:
                    line.take(slot, ticket)
                    self._ledger.dropped(ticket, _over_budget(ticket, limit, state, options))
                    continue
                if state.out_of_service + self._units + ticket._takes_out > limit:
                    self._wake_on_end = True
                    await self._wait(interval)
                    continue
            if holds.followed and holds.current() is not None:
                continue
            self._start(slot, ticket, now)

    async def _wait(self, seconds: float | None) -> None:
        """Until woken (a submit, a resume, an end the scheduler waits for, a close) or, when
        ``seconds`` is given, that long on the clock."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._wakeup = future
        try:
            if seconds is None:
                await future
            else:
                with contextlib.suppress(TimeoutError):
                    async with self._deadlines.within(seconds):
                        await future
        finally:
            self._wakeup = None
            self._wake_on_end = False

    def _wake(self) -> None:
        future = self._wakeup
        if future is not None and not future.done():
            future.set_result(None)

    def _replan(
        self, slot: Slot, old: Ticket[Any], plan: Replan, state: ReleaseState, now: float
    ) -> Ticket[Any]:
        restores = old._restores if plan.restores is None else plan.restores
        fresh: Ticket[Any] = Ticket(
            old._key, plan.run, state.version, plan.takes_out, restores, now
        )
        self._line.replace(slot, old, fresh)
        self._ledger.replanned(old, fresh)
        return fresh

    def _start(self, slot: Slot, ticket: Ticket[Any], now: float) -> None:
        self._line.take(slot, ticket)
        self._running[ticket._key] = ticket
        ticket._state = READY
        self._in_flight += 1
        self._units += ticket._takes_out
        self._pacer.record(now)
        self.stats.started += 1
        self._pool.run(ticket)

    # -- running, and how actions end --------------------------------------------------------------

    async def _execute(self, ticket: Ticket[Any]) -> None:
        """Run a committed action once (on a worker) and settle what follows."""
        ticket._state = RUNNING
        ticket._tries += 1
        started = self._clock.monotonic()
        try:
            result = await ticket._run()
        except asyncio.CancelledError as error:
            if not self._cancelling:  # raised by the action itself: a failed run
                self._failed_run(ticket, error, started)
                return
            self._end(ticket)
            self._ledger.failed(ticket, error, started, "cancelled")
            raise
        except Exception as error:
            self._failed_run(ticket, error, started)
        except BaseException as error:  # KeyboardInterrupt, SystemExit: recorded, then raised
            self._end(ticket)
            self._ledger.failed(ticket, error, started, f"{type(error).__name__} raised")
            raise
        else:
            self._end(ticket)
            if self._pacer.succeeded(self._checks.brake is _OFF):
                self._wake()  # the window may be open now
            self._ledger.done(ticket, result)

    def _failed_run(self, ticket: Ticket[Any], error: BaseException, started: float) -> None:
        """A run raised: retry after a backoff, or end the action."""
        self._pacer.failed()
        tries, most = ticket._tries, self.options.max_attempts
        if tries >= most or self._closed:
            self._end(ticket)
            why = "closed" if tries < most else f"attempts exhausted ({tries} of {most})"
            self._ledger.failed(ticket, error, started, why)
            return
        self._release(ticket)
        key = ticket._key
        now = self._clock.monotonic()
        newer = self._line.pending.get(key)
        if newer is not None:  # a newer intent waits behind this one: retrying it is moot
            self._ledger.record(ticket, error, started, now, None)
            self._unpark(key)
            self._ledger.superseded(ticket, newer)
            return
        delay = backoff(self.options, tries, self._random)
        self._line.back_off(ticket, now + delay)
        self._ledger.retrying(ticket, error, started, now, delay)
        self._wake()

    def _end(self, ticket: Ticket[Any]) -> None:
        """A committed action ended: free its place, and put its key's parked one in line."""
        self._release(ticket)
        self._unpark(ticket._key)

    def _release(self, ticket: Ticket[Any]) -> None:
        del self._running[ticket._key]
        self._in_flight -= 1
        self._units -= ticket._takes_out
        if self._wake_on_end:
            self._wake()

    def _unpark(self, key: str) -> None:
        if self._line.unpark(key):
            self._wake()


def _over_budget(
    ticket: Ticket[Any], limit: float, state: ReleaseState, options: ReleaseOptions
) -> str:
    return (
        f"over budget: takes out {ticket._takes_out} units, the whole budget is {limit:g} "
        f"(budget_share {options.budget_share:g} of capacity {state.capacity}, "
        f"budget_units {options.budget_units:g})"
    )
