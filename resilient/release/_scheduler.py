"""The release queue's engine: the scheduler that decides what starts, and how runs end.

:class:`Scheduler` holds the queue's state and runs one scheduler task, which starts actions
one at a time in line order (restores first, then the rest, each lane first in first out; see
``_line.py``), and worker tasks that run them (``_pool.py``). Before each start the scheduler
checks, in this order:

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

The scheduler works in *passes*: a pass checks 1 to 5 and reads the state once, then takes
actions in line order while every check holds, each one judged (6, 7) on its own. The starts of
a pass happen in one turn of the event loop, at one instant, with nothing else run between them
(when there is no revalidate callback; with one, every start is a pass of its own, as the
callback may await), so the state read for the pass is the state at each one's commit, and the
budget counts the units of the actions the pass already started. Drops do not end a pass: a
backlog of stale actions after a pause is judged on one read. A pass handles at most 256
actions before it lets the event loop run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

from resilient._deadline import Deadlines
from resilient.clock import Clock
from resilient.events import Emitter, EventBus
from resilient.release._commit import (
    CommitChecks,
    Raised,
    RevalidateCallback,
    StateSource,
    described,
)
from resilient.release._events import RELEASE_EVENT_SOURCE, QueueClosed
from resilient.release._hold import Holds
from resilient.release._ledger import Ledger
from resilient.release._line import Line
from resilient.release._options import ReleaseOptions
from resilient.release._pacing import Pacer, backoff, budget_limit
from resilient.release._pool import WorkerPool
from resilient.release._ticket import HERE, READY, Ticket
from resilient.release._types import Brake, ReleaseState, ReleaseStats, Replan

__all__ = ["Scheduler"]

_log = logging.getLogger("resilient.release")

_OFF, _SLOWED, _HALTED = Brake.OFF, Brake.SLOWED, Brake.HALTED

_PASS = 256
"""Most starts in one pass of the scheduler before it lets the event loop run (a backlog of
100,000 actions with no throttling would otherwise hold the loop for a tenth of a second)."""


class Scheduler:
    """The state of a release queue and the task that starts its actions. The public
    surface, and the validation of everything a caller passes, is :class:`ReleaseQueue`'s
    (``_queue.py``): this class trusts its arguments."""

    def __init__(
        self,
        state: StateSource,
        options: ReleaseOptions,
        revalidate: RevalidateCallback | None,
        clock: Clock,
        events: EventBus,
    ) -> None:
        self.options = options
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
        self._pool = WorkerPool(self._succeeded, self._failed)
        self._in_flight = 0
        self._units = 0
        self._scheduler: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._wake_on_end = False
        self._ledger = Ledger(
            self.stats, self._emit, clock, options.routine_events, self._line.pending, self._running
        )
        self._holds = Holds(clock, self._emit, self._pacer, self.stats, self._wake)
        self._closed = False
        self._cancelling = False

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
        # A *pass* reads the state once, then starts actions in line order while every check
        # holds; its starts happen in one turn of the event loop, at one instant, with nothing
        # else run in between, so that state is the state at each one's commit. The common
        # case (a sync state(), no callback, no pause, no brake) awaits nothing. With a
        # revalidate callback every start is a pass of its own.
        options = self.options
        clock = self._clock
        pacer = self._pacer
        log = pacer.log
        checks = self._checks
        read = checks.source
        policy_only = checks.revalidate is None
        line = self._line
        pending = line.pending
        restores = line.restores
        removals = line.removals
        holds = self._holds
        running = self._running
        stats = self.stats
        pool = self._pool
        ready = pool.ready
        max_in_flight = options.max_in_flight
        max_age = options.max_age
        slow_above = options.slow_above
        interval = options.interval
        slow_window = interval * options.slow_factor
        here, starting, most = HERE, READY, _PASS
        while not self._closed:
            now = clock.monotonic()
            due = line.next_due()
            if due is not None and due <= now:
                line.admit_due(now)
                due = line.next_due()
            wait = None if due is None else due - now
            ticket = line.head()
            if ticket is None:
                await self._wait(wait)
                continue
            held = (holds.manual is not None or holds.followed) and holds.update(len(line))
            if held:
                await self._wait(None if holds.manual is not None else interval)
                continue
            if self._in_flight >= max_in_flight:
                self._wake_on_end = True
                await self._wait(wait)
                continue
            allowance = pacer.allowance
            if len(log) >= allowance:
                braked = not ticket._restores and checks.brake is _SLOWED
                delay = log[-allowance] + (slow_window if braked else interval) - now
                if delay > 0:
                    await self._wait(delay if wait is None else min(delay, wait))
                    continue
            try:
                state: Any = read()
            except (Exception, asyncio.CancelledError) as error:
                state = Raised(error)
            if type(state) is not ReleaseState or checks.unavailable:
                state = await checks.settle(state, now)
                if state is None:
                    await self._wait(interval)
                    continue
                if self._closed or ticket._entry is None or holds.manual is not None:
                    continue  # changed while the state was awaited: look again
                now = clock.monotonic()
            brake = _OFF
            if checks.brake is not _OFF or state.unhealthy > slow_above:
                brake = checks.update_brake(state, now)
            version = state.version
            limit = budget_limit(options, state)
            room = limit - state.out_of_service  # for the units of the actions it starts
            passed = handled = 0
            pause: float | None = None  # how long to wait after the pass (None: no wait)
            wake_on_end = False
            while True:  # one action per round; a check that does not hold ends the pass
                if handled:  # the next in line, if the cheap checks still hold
                    if handled >= most:
                        break
                    # Line.head, inlined for the common case: no restore waits, and the first
                    # removal holds its own place.
                    head = removals[0] if removals and not restores else None
                    if head is None or head._entry is not here:
                        head = line.head()
                        if head is None:
                            break
                    if self._in_flight >= max_in_flight:
                        break
                    ticket = head
                    allowance = pacer.allowance
                    if len(log) >= allowance and log[-allowance] + interval > now:
                        break
                handled += 1
                if not ticket._restores and brake is not _OFF:
                    if brake is _HALTED:
                        pause = interval  # read the state (health) again in an interval
                        break
                    if pacer.delay(now, slow_window) > 0:
                        break
                if policy_only:
                    if now - ticket._submitted_at > max_age or ticket._based_on < version:
                        line.take(ticket)
                        self._ledger.dropped(ticket, checks.problem(ticket, state, now) or "")
                        continue
                else:
                    judged = await checks.judge(ticket, state, now)
                    if self._closed or ticket._entry is None or holds.manual is not None:
                        break  # changed while the callback ran: look again
                    if holds.followed and holds.current() is not None:
                        break
                    if judged is not None:
                        if isinstance(judged, str):
                            line.take(ticket)
                            self._ledger.dropped(ticket, judged)
                            break
                        fresh = self._replan(ticket, judged, state, now)
                        if fresh._restores != ticket._restores:
                            break  # the fresh action went to the other lane
                        ticket = fresh
                takes_out = ticket._takes_out
                if takes_out:  # never for a restore
                    if takes_out > limit:
                        line.take(ticket)
                        self._ledger.dropped(ticket, _over_budget(ticket, limit, state, options))
                        continue
                    if self._units + takes_out > room:
                        pause, wake_on_end = interval, True  # an end, or a new state, may help
                        break
                # Start it (line.take and WorkerPool.run, inlined: every action comes here).
                (restores if ticket._restores else removals).popleft()
                entry = ticket._entry
                if entry is not here and entry is not None:
                    entry._current = None  # the place of a ticket this one superseded
                ticket._entry = None
                key = ticket._key
                del pending[key]
                running[key] = ticket
                ticket._state = starting
                ticket._started = now
                self._in_flight += 1
                self._units += takes_out
                log.append(now)
                ready.append(ticket)
                passed += 1
                if not policy_only:
                    break  # with a callback, every start is a pass of its own
            stats.started += passed
            if ready:
                pool.wake()
            if pause is not None:
                self._wake_on_end = wake_on_end
                await self._wait(pause)
            elif handled >= most:
                await asyncio.sleep(0)  # let the workers, and everyone else, run

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
        self, old: Ticket[Any], plan: Replan, state: ReleaseState, now: float
    ) -> Ticket[Any]:
        restores = old._restores if plan.restores is None else plan.restores
        fresh: Ticket[Any] = Ticket(
            old._key, plan.run, state.version, plan.takes_out, restores, now
        )
        self._line.replace(old, fresh)
        self._ledger.replanned(old, fresh)
        return fresh

    # -- running, and how actions end --------------------------------------------------------------

    def _succeeded(self, ticket: Ticket[Any], result: object) -> None:
        """A run returned (called by a worker): free its place, grow the ramp, end it."""
        key = ticket._key
        del self._running[key]
        self._in_flight -= 1
        self._units -= ticket._takes_out
        wake = self._wake_on_end
        if key in self._line.pending:
            wake |= self._line.unpark(key)
        if self._checks.brake is _OFF:
            pacer = self._pacer
            pacer.successes += 1
            if pacer.successes >= pacer.allowance:  # Pacer.succeeded, inlined up to a change
                wake |= pacer.succeeded()  # the window may be open now
        if wake:
            self._wake()
        self._ledger.done(ticket, result)

    def _failed(self, ticket: Ticket[Any], error: BaseException) -> bool:
        """A run raised (called by a worker); True when the worker must raise it too."""
        started = ticket._started
        if isinstance(error, Exception):
            self._failed_run(ticket, error, started)
            return False
        if isinstance(error, asyncio.CancelledError) and not self._cancelling:
            self._failed_run(ticket, error, started)  # raised by the action itself
            return False
        self._end(ticket)
        why = (
            "cancelled"
            if isinstance(error, asyncio.CancelledError)
            else (f"{type(error).__name__} raised")
        )
        self._ledger.failed(ticket, error, started, why)
        return True  # our close(cancel=True), or KeyboardInterrupt / SystemExit

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
