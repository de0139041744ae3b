"""Deadlines on the injected clock: ``asyncio.timeout`` for code that runs in virtual time.

A pattern that promises a caller an answer within a budget (the rate-limit guard's 20 ms, a
pool's acquire timeout, a retry's overall deadline, a hedge's delay) cannot use
``asyncio.timeout``: that reads the event loop's clock, so a test in virtual time would wait
in real time. :class:`Deadlines` keeps any number of deadlines on a
:class:`~resilient.clock.Clock` with one watchdog task, not a task or a timer per deadline.

``async with deadlines.within(seconds) as scope:`` behaves as ``asyncio.timeout(seconds)``:
when the time is up the block's task is cancelled where it waits, and the ``async with``
raises :class:`TimeoutError` from the cancellation the block raised (``scope.expired`` is
then True; a :class:`~asyncio.CancelledError` subclass the block raised is the timeout's
``__cause__``, for the caller to read). A cancellation that comes from
elsewhere passes through unchanged, and a block that ends in time leaves no cancellation
behind. The watchdog task ends by itself once no deadline is left, and starts again with the
next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from types import TracebackType
from typing import Any

from resilient._validate import Number, check
from resilient.clock import Clock

__all__ = ["DeadlineScope", "Deadlines"]

_SECONDS = Number(finite=False, unit="seconds")


class Deadlines:
    """Deadlines on ``clock`` for the tasks of one event loop, kept by one watchdog task."""

    def __init__(self, clock: Clock, *, name: str = "deadlines") -> None:
        self._clock = clock
        self._name = name
        self._heap: list[tuple[float, int, DeadlineScope]] = []
        self._order = itertools.count()
        self._watchdog: asyncio.Task[None] | None = None
        self._watching_until = float("inf")

    def within(self, seconds: float) -> DeadlineScope:
        """A scope for ``async with`` whose block must end within ``seconds`` on the clock
        (0 or less: cancelled at its first wait; infinite: never)."""
        return DeadlineScope(self, check("Deadlines.within(seconds)", seconds, _SECONDS))

    @property
    def pending(self) -> int:
        """Scopes entered and not yet left."""
        return sum(1 for _, _, scope in self._heap if not scope.done)

    async def aclose(self) -> None:
        """Stop the watchdog; blocks still running then run without a deadline. A scope
        entered while this waits for the watchdog to stop keeps its deadline (a new watchdog
        keeps it)."""
        watchdog, self._watchdog = self._watchdog, None
        self._heap.clear()  # before the wait: scopes entered meanwhile are not dropped
        if watchdog is not None and not watchdog.done():
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog

    # -- called by the scopes ----------------------------------------------------------------

    def _enter(self, scope: DeadlineScope) -> None:
        watchdog = self._watchdog
        if watchdog is None or watchdog.done():
            self._start_watchdog(scope.deadline)
        elif scope.deadline < self._watching_until:
            # The watchdog sleeps until a later deadline: wake it for this one.
            watchdog.cancel()
            self._start_watchdog(scope.deadline)
        # Only now, once a watchdog surely keeps it: a scope whose entry failed (no task could
        # be made) is not left behind to cancel its task later.
        heapq.heappush(self._heap, (scope.deadline, next(self._order), scope))

    def _leave(self) -> None:
        heap = self._heap
        while heap and heap[0][2].done:
            heapq.heappop(heap)

    def _start_watchdog(self, until: float) -> None:
        """A new watchdog task, which will first look at the deadline ``until``: scopes entered
        before it runs, with later deadlines, keep it rather than start another."""
        self._watchdog = asyncio.get_running_loop().create_task(
            self._watch(), name=f"{self._name}.watchdog"
        )
        self._watching_until = until

    async def _watch(self) -> None:
        """Expire the scopes in deadline order; end once none is left (a finished watchdog is
        replaced by the next scope entered)."""
        heap = self._heap
        while heap:
            deadline, _, scope = heap[0]
            if scope.done:
                heapq.heappop(heap)
                continue
            delay = deadline - self._clock.monotonic()
            if delay > 0:
                self._watching_until = deadline
                await self._clock.sleep(delay)
                continue
            heapq.heappop(heap)
            scope._expire()


class DeadlineScope:
    """One deadline, entered with ``async with``; see :class:`Deadlines`."""

    __slots__ = ("_cancelling", "_owner", "_task", "deadline", "done", "expired", "seconds")

    def __init__(self, owner: Deadlines, seconds: float) -> None:
        self._owner = owner
        self.seconds = seconds
        self.deadline = 0.0
        self.expired = False
        """True once the deadline passed while the block still ran (its task was cancelled)."""
        self.done = False
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0

    async def __aenter__(self) -> DeadlineScope:
        if self._task is not None:
            raise RuntimeError("a deadline scope is entered once; make a new one with within()")
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline scope must be entered from a task")
        self._task = task
        self._cancelling = task.cancelling()
        self.deadline = self._owner._clock.monotonic() + self.seconds
        self._owner._enter(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.done = True
        self._owner._leave()
        task = self._task
        # Take back the cancellation this deadline sent; one sent from elsewhere stays.
        if (
            self.expired
            and task is not None
            and task.uncancel() <= self._cancelling
            and exc_type is not None
            and issubclass(exc_type, asyncio.CancelledError)
        ):
            raise TimeoutError(f"deadline of {self.seconds}s passed") from exc

    def _expire(self) -> None:
        self.expired = True
        if self._task is not None:
            self._task.cancel("deadline passed")
