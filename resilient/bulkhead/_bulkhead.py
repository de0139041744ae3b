"""A bulkhead: at most ``limit`` calls to one dependency in flight, a short bounded line, and
load shedding instead of timeouts.

:class:`Bulkhead` guarantees, on every path (success, an exception raised by the call, sync or
async, a cancellation at any await, in line or in the call):

- a call is admitted only while fewer than the limit's answer are in flight: never more than
  the limit at any admission, whatever the number of callers;
- callers wait first come first served, at most ``max_waiting`` of them (one more is shed at
  once, :class:`~resilient.errors.BulkheadFullError`), each at most ``max_wait`` seconds (then
  it is shed, :class:`~resilient.errors.BulkheadDeadlineError`): a caller always gets an
  answer it can act on from the bulkhead, never a timeout from somewhere else;
- every permit is given back exactly once; a permit handed to a caller that was cancelled
  meanwhile goes to the next in line;
- the limit hears of each call that ended (:class:`~resilient.bulkhead.Sample`) with its
  latency measured *from its admission*: the time it waited in line is the bulkhead's own,
  not the dependency's, so a healthy dependency under a long line keeps its limit. Only a
  fault of the dependency (``options.failures``, never an error resilient raised) is a drop;
  a cancelled call is no sample at all;
- with a ``throttle`` (:class:`~resilient.bulkhead.AdaptiveThrottle`), a caller is first
  offered to it (rejected locally: :class:`~resilient.errors.ThrottledError`), and each call
  admitted tells it whether the dependency accepted it. A caller the bulkhead sheds itself
  tells the throttle nothing: the dependency never saw it.

Every shed emits ``shed`` with its reason, and every change of the limit ``limit_changed``.
A limit or a listener that raises is logged and never breaks a caller. Use one bulkhead from one
event loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import ParamSpec, TypeVar

from resilient._deadline import Deadlines
from resilient._validate import Instance, Text, check, shown
from resilient.bulkhead._events import (
    BULKHEAD_EVENT_SOURCE,
    SHED_DEADLINE,
    SHED_FULL,
    SHED_THROTTLED,
    CallShed,
    LimitChanged,
)
from resilient.bulkhead._limits import FixedLimit, Limit, Sample, read_limit
from resilient.bulkhead._options import (
    DEFAULT_BULKHEAD_OPTIONS,
    DEFAULT_FIXED_LIMIT,
    BulkheadOptions,
    is_fault,
)
from resilient.bulkhead._throttle import AdaptiveThrottle
from resilient.clock import SYSTEM_CLOCK, Clock
from resilient.errors import (
    ArgumentTypeError,
    BulkheadDeadlineError,
    BulkheadFullError,
    LoadShedError,
)
from resilient.events import DEFAULT_EVENTS, Emitter, EventBus

__all__ = ["Bulkhead", "BulkheadStats"]

_log = logging.getLogger("resilient.bulkhead")

P = ParamSpec("P")
T = TypeVar("T")

_LIMIT_RULE = Instance(Limit, "a Limit (FixedLimit, AIMDLimit, Gradient2Limit or your own) or None")


@dataclass(frozen=True, slots=True)
class BulkheadStats:
    """A snapshot of one :class:`Bulkhead`: its gauges now, and its counters since it was made."""

    in_flight: int
    """Calls admitted and not yet ended."""
    waiting: int
    """Callers in line for a permit."""
    limit: int
    """Calls allowed in flight now (the limit's last answer)."""
    admitted: int
    """Calls admitted."""
    failed: int
    """Admitted calls that ended with a fault of the dependency (drops)."""
    cancelled: int
    """Admitted calls cancelled before they ended (no sample)."""
    shed_full: int
    """Callers shed at once: the line was full."""
    shed_deadline: int
    """Callers shed at their deadline (``max_wait``) in line."""
    shed_throttled: int
    """Callers rejected locally by the throttle."""

    @property
    def shed(self) -> int:
        """Callers shed, for any reason."""
        return self.shed_full + self.shed_deadline + self.shed_throttled


class Bulkhead:
    """At most ``limit`` calls in flight to the dependency ``name`` (see the module doc).

    ``async with bulkhead.acquire(): ...`` runs the block as one call; ``await
    bulkhead.call(fn, *args)`` awaits ``fn(*args)`` as one. ``limit`` is a
    :class:`~resilient.bulkhead.Limit` (default ``FixedLimit(25)``, Resilience4j's); an
    adaptive one (:class:`~resilient.bulkhead.AIMDLimit`,
    :class:`~resilient.bulkhead.Gradient2Limit`) follows the dependency. ``throttle`` adds
    client-side throttling in front of the line.
    """

    def __init__(
        self,
        name: str,
        options: BulkheadOptions = DEFAULT_BULKHEAD_OPTIONS,
        *,
        limit: Limit | None = None,
        throttle: AdaptiveThrottle | None = None,
        clock: Clock = SYSTEM_CLOCK,
        events: EventBus = DEFAULT_EVENTS,
    ) -> None:
        self.name = check("Bulkhead.name", name, Text(non_empty=True))
        self.options = check(
            "Bulkhead.options", options, Instance(BulkheadOptions, "a BulkheadOptions")
        )
        if limit is None:
            limit = FixedLimit(DEFAULT_FIXED_LIMIT)
        if isinstance(limit, type):
            raise ArgumentTypeError(f"Bulkhead.limit must be {_LIMIT_RULE.name}, got {limit!r}")
        self.limit: Limit = check("Bulkhead.limit", limit, _LIMIT_RULE)
        self.throttle = check(
            "Bulkhead.throttle",
            throttle,
            Instance((AdaptiveThrottle, type(None)), "an AdaptiveThrottle or None"),
        )
        self._clock = check("Bulkhead.clock", clock, Instance(Clock, "a Clock"))
        check("Bulkhead.events", events, Instance(EventBus, "an EventBus"))
        self._limit = read_limit("Bulkhead.limit.limit", limit)
        self._emit = Emitter(BULKHEAD_EVENT_SOURCE, events, clock)
        self._deadlines = Deadlines(clock, name=f"Bulkhead {name}")
        self._waiters: collections.deque[asyncio.Future[int]] = collections.deque()
        self._in_flight = 0
        self._admitted = 0
        self._failed = 0
        self._cancelled = 0
        self._shed_full = 0
        self._shed_deadline = 0
        self._shed_throttled = 0

    def acquire(self) -> _Permit:
        """``async with bulkhead.acquire():``: the block is one call to the dependency. Raises
        a :class:`~resilient.errors.LoadShedError` on entry when the caller is shed."""
        return _Permit(self)

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` as one call through the bulkhead; raise a
        :class:`~resilient.errors.LoadShedError` without calling ``fn`` when shed."""
        if not callable(fn):
            raise ArgumentTypeError(f"Bulkhead.call(fn) must be a callable, got {shown(fn)}")
        async with _Permit(self):
            return await fn(*args, **kwargs)

    @property
    def stats(self) -> BulkheadStats:
        return BulkheadStats(
            in_flight=self._in_flight,
            waiting=len(self._waiters),
            limit=self._limit,
            admitted=self._admitted,
            failed=self._failed,
            cancelled=self._cancelled,
            shed_full=self._shed_full,
            shed_deadline=self._shed_deadline,
            shed_throttled=self._shed_throttled,
        )

    # -- admission -----------------------------------------------------------------------------

    async def _admit(self) -> int:
        """Admit the caller (the calls in flight then, itself included), or shed it."""
        throttle = self.throttle
        if throttle is not None and not throttle.allow():
            self._shed_throttled += 1
            raise self._shed(throttle.rejection(), SHED_THROTTLED)
        if self._in_flight < self._limit and not self._waiters:
            self._in_flight += 1
            self._admitted += 1
            return self._in_flight
        options = self.options
        if len(self._waiters) >= options.max_waiting:
            self._shed_full += 1
            raise self._shed(
                BulkheadFullError(
                    self.name,
                    SHED_FULL,
                    f"{self._in_flight} calls in flight (limit {self._limit}) and "
                    f"{len(self._waiters)} callers waiting (max_waiting "
                    f"{options.max_waiting})",
                ),
                SHED_FULL,
            )
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            async with self._deadlines.within(options.max_wait):
                await future
        except TimeoutError:
            if not _granted(future):
                self._leave_line(future)
                self._shed_deadline += 1
                raise self._shed(
                    BulkheadDeadlineError(
                        self.name,
                        SHED_DEADLINE,
                        f"no permit within max_wait ({options.max_wait:g}s); "
                        f"{self._in_flight} calls in flight (limit {self._limit})",
                    ),
                    SHED_DEADLINE,
                ) from None
            # The permit came as the deadline passed: the caller has it.
        except BaseException:
            if _granted(future):
                self._release()
            else:
                self._leave_line(future)
            raise
        self._admitted += 1
        return future.result()

    def _leave_line(self, future: asyncio.Future[int]) -> None:
        future.cancel()
        # A release may have taken it off the line already (cancelled: it was skipped).
        with contextlib.suppress(ValueError):
            self._waiters.remove(future)

    def _shed(self, error: LoadShedError, reason: str) -> LoadShedError:
        self._emit(CallShed(self.name, reason, self._in_flight, len(self._waiters), self._limit))
        return error

    # -- the end of a call ---------------------------------------------------------------------

    def _finish(self, admitted_at: float, in_flight: int, error: BaseException | None) -> None:
        """One admitted call ended (``error`` None: it returned): tell the limit and the
        throttle, give the permit back."""
        try:
            if error is None or isinstance(error, Exception):
                dropped = error is not None and is_fault(error, self.options.failures)
                if dropped:
                    self._failed += 1
                if self.throttle is not None:
                    self.throttle.record(not dropped)
                now = self._clock.monotonic()
                self._sample(Sample(now, now - admitted_at, in_flight, dropped))
            else:
                self._cancelled += 1
        except Exception:
            _log.exception("bulkhead %r: a call's outcome could not be recorded", self.name)
        finally:
            self._release()

    def _sample(self, sample: Sample) -> None:
        limit = self.limit
        limit.on_sample(sample)
        new = read_limit("Bulkhead.limit.limit", limit)
        previous = self._limit
        if new != previous:
            self._limit = new
            self._emit(LimitChanged(self.name, previous, new, sample.latency, sample.dropped))

    def _release(self) -> None:
        """Give one permit back, and hand the free permits to the callers in line, in order."""
        self._in_flight -= 1
        waiters = self._waiters
        while waiters and self._in_flight < self._limit:
            future = waiters.popleft()
            if not future.done():
                self._in_flight += 1
                future.set_result(self._in_flight)

    def __repr__(self) -> str:
        return (
            f"Bulkhead({self.name!r}, in_flight={self._in_flight}, "
            f"waiting={len(self._waiters)}, limit={self._limit})"
        )


def _granted(future: asyncio.Future[int]) -> bool:
    return future.done() and not future.cancelled()


class _Permit:
    """``async with bulkhead.acquire():`` (see :meth:`Bulkhead.acquire`)."""

    __slots__ = ("_admitted_at", "_bulkhead", "_in_flight")

    def __init__(self, bulkhead: Bulkhead) -> None:
        self._bulkhead = bulkhead
        self._in_flight = 0

    async def __aenter__(self) -> None:
        if self._in_flight:
            raise RuntimeError("a permit is entered once: call bulkhead.acquire() again")
        bulkhead = self._bulkhead
        if (
            bulkhead._in_flight < bulkhead._limit
            and not bulkhead._waiters
            and bulkhead.throttle is None
        ):
            bulkhead._in_flight += 1
            bulkhead._admitted += 1
            self._in_flight = bulkhead._in_flight
        else:
            self._in_flight = await bulkhead._admit()
        self._admitted_at = bulkhead._clock.monotonic()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        in_flight, self._in_flight = self._in_flight, 0
        self._bulkhead._finish(self._admitted_at, in_flight, exc)
