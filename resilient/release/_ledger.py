"""How actions end: the one place a :class:`~resilient.release.Ticket` of a
:class:`~resilient.release.ReleaseQueue` is resolved.

Each way an action can end (done, failed, superseded, dropped) resolves its ticket once,
counts it in :class:`~resilient.release.ReleaseStats` and tells it in an event, here and
nowhere else: nothing ends silently. The ledger also keeps the failed runs of each action
(its retry schedule) and wakes :meth:`~resilient.release.ReleaseQueue.drain` when nothing is
left.
"""

from __future__ import annotations

import asyncio
from typing import Any

from resilient.clock import Clock
from resilient.events import Emitter
from resilient.release._commit import described
from resilient.release._events import (
    ActionDone,
    ActionDropped,
    ActionFailed,
    ActionReplanned,
    ActionRetrying,
    ActionSuperseded,
)
from resilient.release._ticket import ENDED, Ticket
from resilient.release._types import Attempt, Done, Dropped, Failed, ReleaseStats, Superseded

__all__ = ["Ledger"]


class Ledger:
    """Ends the tickets of one queue; ``pending`` and ``running`` are the queue's waiting
    and committed actions by key (the queue is idle when both are empty)."""

    __slots__ = ("_clock", "_drainers", "_emit", "_pending", "_routine", "_running", "stats")

    def __init__(
        self,
        stats: ReleaseStats,
        emit: Emitter,
        clock: Clock,
        routine_events: bool,
        pending: dict[str, Ticket[Any]],
        running: dict[str, Ticket[Any]],
    ) -> None:
        self.stats = stats
        self._emit = emit
        self._clock = clock
        self._routine = routine_events
        self._pending = pending
        self._running = running
        self._drainers: list[asyncio.Future[None]] = []

    def done(self, ticket: Ticket[Any], result: object) -> None:
        self.stats.done += 1
        # Ticket._resolve_lazily(Done, result), inlined: every action that succeeds comes here.
        ticket._lazy = Done
        ticket._value = result
        ticket._state = ENDED
        future = ticket._future
        if future is not None and not future.done():
            future.set_result(None)
        if self._routine:
            self._emit(ActionDone(ticket._key, ticket._tries))
        if self._drainers and not self._pending and not self._running:
            self.notify()

    def superseded(self, old: Ticket[Any], by: Ticket[Any]) -> None:
        self.stats.superseded += 1
        old._resolve_lazily(Superseded, by)
        if self._routine:
            self._emit(ActionSuperseded(old._key, old._based_on, by._based_on))

    def replanned(self, old: Ticket[Any], fresh: Ticket[Any]) -> None:
        """``fresh`` (a ``Replan`` answer) supersedes ``old``."""
        self.stats.replanned += 1
        self.stats.superseded += 1
        old._resolve(Superseded(fresh))
        self._emit(ActionReplanned(old._key, old._based_on, fresh._based_on))

    def dropped(self, ticket: Ticket[Any], reason: str) -> None:
        self.stats.dropped += 1
        ticket._resolve(Dropped(reason))
        self._emit(ActionDropped(ticket._key, reason))
        if self._drainers:
            self.notify()

    def failed(self, ticket: Ticket[Any], error: BaseException, started: float, why: str) -> None:
        """Its last run (started at ``started``) raised ``error``; no retry, for ``why``."""
        self.record(ticket, error, started, self._clock.monotonic(), None)
        self.stats.failed += 1
        ticket._resolve(Failed(error, tuple(ticket._attempts or ())))
        self._emit(ActionFailed(ticket._key, described(error), ticket._tries, why))
        if self._drainers:
            self.notify()

    def retrying(
        self, ticket: Ticket[Any], error: BaseException, started: float, now: float, delay: float
    ) -> None:
        """Its run raised ``error``; it runs again ``delay`` seconds after ``now``."""
        self.record(ticket, error, started, now, delay)
        self.stats.retries += 1
        self._emit(ActionRetrying(ticket._key, ticket._tries, described(error), delay))

    @staticmethod
    def record(
        ticket: Ticket[Any],
        error: BaseException,
        started: float,
        ended: float,
        delay: float | None,
    ) -> None:
        """Add a failed run to the ticket's attempts."""
        attempt = Attempt(ticket._tries, started, ended, error, delay)
        if ticket._attempts is None:
            ticket._attempts = [attempt]
        else:
            ticket._attempts.append(attempt)

    async def drained(self) -> None:
        """Return once nothing waits or runs."""
        while self._pending or self._running:
            future = asyncio.get_running_loop().create_future()
            self._drainers.append(future)
            try:
                await future
            except asyncio.CancelledError:
                # A cancelled waiter leaves nothing behind (a caller polling drain() with a
                # timeout on a queue that is never idle would otherwise grow this list).
                if future in self._drainers:
                    self._drainers.remove(future)
                raise

    def notify(self) -> None:
        """Wake :meth:`drained` if nothing waits or runs."""
        if self._pending or self._running:
            return
        drainers, self._drainers = self._drainers, []
        for future in drainers:
            if not future.done():
                future.set_result(None)
