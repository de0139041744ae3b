"""The fail-open guard: a limiter that cannot answer never turns into "over the limit".

:class:`FailOpenGuard` asks its primary limiter (say, a :class:`RedisLimiter`) within a time
budget. When the primary times out, raises (connection error, or anything else: protocol
garbage), returns something that is not a well-formed :class:`Decision`, or its circuit breaker
is open, the guard answers from its fallback: a :class:`LocalLimiter` holding this instance's
share of the global limit, so an abusive key is still limited, and nobody else is denied
because of the fault. The answer says so: ``source=FALLBACK`` and a ``reason``. Configured
``mode=PASS_THROUGH``, it allows outright instead (``source=PASS_THROUGH``). Failing closed
(raising :class:`LimiterUnavailable`, never a denial) exists only as the explicit opt-in
``mode=FAIL_CLOSED``.

While the breaker is quiet (closed, no fault counted since the last success), a healthy
decision costs it one counter and no call (:attr:`CircuitBreaker.quiet_permit`). While the
breaker is open the primary is not called at all; after the breaker's reset timeout
one probe goes to the primary, and its success brings the guard back (``recovered`` event).

The time budget runs on the injected clock, without a task or a timer per decision. A primary
that declares ``never_waits = True`` (a :class:`LocalLimiter`) is simply awaited: it cannot
be interrupted, so there is nothing to time. Any other primary has its first step run by
hand: an answer given without waiting needs no budget. Once a primary has been seen waiting
(a :class:`RedisLimiter`), it is awaited natively under a budget kept by one watchdog task
per guard; a spent budget cancels the waiting caller exactly as ``asyncio.timeout`` would (the
primary sees a cancellation where it waits), and the guard takes the cancellation back and
answers without the primary. The watchdog ends by itself one budget after the last waiting
decision.

Events (source ``"ratelimit.guard"``): ``degraded`` (with the reason) when the guard starts
answering without its primary, ``recovered`` when the primary answers again, and
``suspected_limiter_fault`` when the primary denies many distinct keys within a short window
(a broken limiter looks like that; the event changes no decision).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import math
from collections.abc import Awaitable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from resilient.breaker import BreakerOptions, CircuitBreaker
from resilient.clock import SYSTEM_CLOCK, Clock
from resilient.events import DEFAULT_EVENTS, Event, EventBus, Severity
from resilient.ratelimit._decision import new_decision
from resilient.ratelimit._errors import LimiterUnavailable
from resilient.ratelimit._local import LocalLimiter
from resilient.ratelimit._types import Decision, DecisionSource, Limiter, Rate

__all__ = [
    "DEFAULT_GUARD_OPTIONS",
    "GUARD_BREAKER_OPTIONS",
    "FailOpenGuard",
    "GuardMode",
    "GuardOptions",
    "GuardStats",
]

EVENT_SOURCE = "ratelimit.guard"


class GuardMode(enum.Enum):
    """What a :class:`FailOpenGuard` answers when its primary cannot."""

    FALLBACK = "fallback"
    """Decide with the fallback limiter (this instance's share of the limit)."""
    PASS_THROUGH = "pass_through"
    """Allow every request."""
    FAIL_CLOSED = "fail_closed"
    """Opt-in: raise :class:`LimiterUnavailable` (an HTTP front answers 503, never 429)."""


@dataclass(frozen=True, slots=True)
class GuardOptions:
    """How a :class:`FailOpenGuard` degrades.

    ``timeout``: seconds (on the guard's clock) the primary may take before the guard answers
    without it (0.020).
    ``mode``: what answers when the primary cannot (:attr:`GuardMode.FALLBACK`).
    ``instances``: how many instances share the global limit; a rate passed to ``decide`` is
    divided by it for the fallback (1). The fallback's own rates are given when it is made.
    ``unavailable``: errors reported as "primary unavailable" (the rest as "primary error";
    both degrade the same way). Also matched by name: any class called ``ConnectionError`` or
    ``TimeoutError`` in the error's type hierarchy (e.g. redis-py's), with no import needed.
    ``fault_keys`` / ``fault_window``: a ``suspected_limiter_fault`` event is emitted when the
    primary denies at least ``fault_keys`` distinct keys within ``fault_window`` seconds
    (100 keys in 1.0 s).
    """

    timeout: float = 0.020
    mode: GuardMode = GuardMode.FALLBACK
    instances: int = 1
    unavailable: tuple[type[BaseException], ...] = (OSError, LimiterUnavailable)
    fault_keys: int = 100
    fault_window: float = 1.0

    def __post_init__(self) -> None:
        for name in ("timeout", "fault_window"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(
                    f"GuardOptions.{name} must be a finite number of seconds > 0, got {value!r}"
                )
        if not isinstance(self.mode, GuardMode):
            raise ValueError(f"GuardOptions.mode must be a GuardMode, got {self.mode!r}")
        for name in ("instances", "fault_keys"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GuardOptions.{name} must be an int >= 1, got {value!r}")
        if not isinstance(self.unavailable, tuple) or not all(
            isinstance(kind, type) and issubclass(kind, BaseException) for kind in self.unavailable
        ):
            raise ValueError(
                "GuardOptions.unavailable must be a tuple of exception types, "
                f"got {self.unavailable!r}"
            )


DEFAULT_GUARD_OPTIONS = GuardOptions()
"""20 ms budget, fall back to the local share, one instance, fault report at 100 keys / 1 s."""

GUARD_BREAKER_OPTIONS = BreakerOptions(failure_threshold=5, reset_timeout=5.0)
"""The default breaker of a guard: open after 5 faults in a row, probe the primary every 5 s."""


@dataclass(slots=True)
class GuardStats:
    """Counters of one :class:`FailOpenGuard` since it was made."""

    primary: int = 0
    """Decisions answered by the primary."""
    fallback: int = 0
    """Decisions answered by the fallback limiter."""
    pass_through: int = 0
    """Decisions that allowed outright (mode PASS_THROUGH)."""
    fail_closed: int = 0
    """Decisions refused with :class:`LimiterUnavailable` (mode FAIL_CLOSED)."""
    timeouts: int = 0
    """Primary calls that ran out of the time budget."""
    unavailable: int = 0
    """Primary calls that raised a connection error."""
    errors: int = 0
    """Primary calls that raised anything else."""
    malformed: int = 0
    """Primary answers that were not a well-formed Decision."""
    breaker_open: int = 0
    """Decisions taken without asking the primary because the breaker refused."""
    suspected_faults: int = 0
    """``suspected_limiter_fault`` events emitted."""


class FailOpenGuard:
    """A :class:`Limiter` that asks ``primary`` and degrades, never to a false denial.

    ``fallback`` (required in mode FALLBACK) is a :class:`LocalLimiter` holding this
    instance's share of the global limit, e.g. ``LocalLimiter(rate.per_share(instances))``.
    ``breaker`` defaults to a :class:`CircuitBreaker` with :data:`GUARD_BREAKER_OPTIONS`
    on the same clock and events. Bad input (a cost that is not an int >= 0) raises
    ValueError, as it would from any limiter; nothing a primary does makes the guard raise,
    except in mode FAIL_CLOSED. Call :meth:`aclose` to stop the watchdog early.
    """

    def __init__(
        self,
        primary: Limiter,
        options: GuardOptions = DEFAULT_GUARD_OPTIONS,
        *,
        fallback: LocalLimiter | None = None,
        breaker: CircuitBreaker | None = None,
        clock: Clock = SYSTEM_CLOCK,
        events: EventBus = DEFAULT_EVENTS,
    ) -> None:
        if not isinstance(options, GuardOptions):
            raise TypeError(f"FailOpenGuard.options must be GuardOptions, got {options!r}")
        if fallback is None and options.mode is GuardMode.FALLBACK:
            raise ValueError(
                "FailOpenGuard.fallback is required in mode FALLBACK: give it "
                "LocalLimiter(rate.per_share(instances)), or choose another GuardOptions.mode"
            )
        if fallback is not None and not isinstance(fallback, LocalLimiter):
            raise TypeError(f"FailOpenGuard.fallback must be a LocalLimiter, got {fallback!r}")
        self.primary = primary
        self.fallback = fallback
        self.options = options
        self.breaker = breaker or CircuitBreaker(
            EVENT_SOURCE, GUARD_BREAKER_OPTIONS, clock=clock, events=events
        )
        self.stats = GuardStats()
        self._clock = clock
        self._events = events
        self._watchdog = _Watchdog(clock, options.timeout)
        # False: declared never to wait (no budget); None: not known yet; True: seen waiting.
        self._primary_waits: bool | None = (
            False if getattr(primary, "never_waits", False) is True else None
        )
        self._shares: dict[Rate, Rate] = {}
        self._degraded_since: float | None = None
        self._fault_window_start = -math.inf
        self._denied_keys: set[str] = set()
        self._fault_reported = False

    @property
    def degraded(self) -> bool:
        """True from the first decision taken without the primary until it answers again."""
        return self._degraded_since is not None

    def rate_for(self, key: str) -> Rate | None:
        """The primary's rate for ``key`` when the primary tells (None otherwise)."""
        if isinstance(self.primary, _KnowsRates):
            return self.primary.rate_for(key)
        return None

    async def decide(self, key: str, *, cost: int = 1, rate: Rate | None = None) -> Decision:
        """Decide one request: the primary's answer, or a degraded one that says why."""
        if cost != 1 and (type(cost) is not int or cost < 0):
            raise ValueError(f"cost must be an int >= 0, got {cost!r}")
        breaker = self.breaker
        permit = breaker.quiet_permit or breaker.try_acquire()  # no call while healthy
        if permit is None:
            self.stats.breaker_open += 1
            return self._degrade(key, cost, rate, "breaker open", None)
        coroutine = self.primary.decide(key, cost=cost, rate=rate)
        waits = self._primary_waits
        if waits is False:
            # Declared never to wait: it cannot be interrupted, so there is nothing to time.
            try:
                decision = await coroutine
            except Exception as error:
                permit.failed(error)
                return self._fault(key, cost, rate, error, timed_out=False)
            except BaseException:
                permit.released()
                raise
        else:
            pending: Awaitable[Decision] | None = coroutine
            if waits is None:
                # First step by hand: an answer without waiting needs no budget.
                try:
                    waiting = coroutine.send(None)
                except StopIteration as done:
                    decision = done.value
                    pending = None
                except Exception as error:
                    permit.failed(error)
                    return self._fault(key, cost, rate, error, timed_out=False)
                except BaseException:
                    permit.released()
                    raise
                else:
                    # It waits: finish this one by hand, and await the next ones natively.
                    self._primary_waits = True
                    pending = _Delegate(coroutine, waiting)
            if pending is not None:
                task = asyncio.current_task()
                cancelling = task.cancelling() if task is not None else 0
                budget = self._watchdog.start(task)
                try:
                    decision = await pending
                except BaseException as error:
                    if self._watchdog.finish(budget, cancelling):
                        timeout = TimeoutError(f"primary took over {self.options.timeout}s")
                        permit.failed(timeout)
                        return self._fault(key, cost, rate, timeout, timed_out=True)
                    if isinstance(error, Exception):
                        permit.failed(error)
                        return self._fault(key, cost, rate, error, timed_out=False)
                    permit.released()  # cancelled from outside: neither success nor failure
                    raise
                self._watchdog.finish(budget, cancelling)
        if type(decision) is not Decision or (
            decision.allowed is not True and _malformed(decision)
        ):
            permit.failed(_Malformed(f"primary returned {decision!r}"))
            self.stats.malformed += 1
            return self._degrade(key, cost, rate, "primary returned a malformed decision", None)
        if permit is breaker.quiet_permit:
            breaker.stats.successes += 1  # all a success does to a quiet breaker, without a call
        else:
            permit.succeeded()
        self.stats.primary += 1
        if self._degraded_since is not None:
            self._recovered()
        if not decision.allowed:
            self._note_denial(key)
        return decision

    async def aclose(self) -> None:
        """Stop the watchdog (a waiting decision then runs without a budget)."""
        await self._watchdog.aclose()

    # Degrading -------------------------------------------------------------------------------

    def _fault(
        self, key: str, cost: int, rate: Rate | None, error: BaseException, *, timed_out: bool
    ) -> Decision:
        """Classify what went wrong with the primary and answer without it."""
        if timed_out:
            self.stats.timeouts += 1
            reason = "primary timeout"
        elif isinstance(error, self.options.unavailable) or _named_unavailable(error):
            self.stats.unavailable += 1
            reason = f"primary unavailable: {type(error).__name__}"
        else:
            self.stats.errors += 1
            reason = f"primary error: {type(error).__name__}"
        return self._degrade(key, cost, rate, reason, error)

    def _degrade(
        self, key: str, cost: int, rate: Rate | None, reason: str, error: BaseException | None
    ) -> Decision:
        """Answer without the primary, as the mode says; the decision carries the reason."""
        if self._degraded_since is None:
            self._degraded_since = self._clock.monotonic()
            self._emit(
                "degraded", Severity.WARNING, {"reason": reason, "mode": self.options.mode.value}
            )
        mode = self.options.mode
        if mode is GuardMode.FALLBACK:
            assert self.fallback is not None  # checked in __init__
            share = None if rate is None else self._share_of(rate)
            answer = self.fallback.decide_now(key, cost=cost, rate=share)
            self.stats.fallback += 1
            return new_decision(
                answer.allowed,
                answer.remaining,
                answer.retry_after,
                answer.reset_after,
                DecisionSource.FALLBACK,
                reason,
            )
        if mode is GuardMode.PASS_THROUGH:
            self.stats.pass_through += 1
            return new_decision(True, 0, 0.0, 0.0, DecisionSource.PASS_THROUGH, reason)
        self.stats.fail_closed += 1
        raise LimiterUnavailable(f"rate limiter unavailable ({reason})") from error

    def _share_of(self, rate: Rate) -> Rate:
        share = self._shares.get(rate)
        if share is None:
            if len(self._shares) >= 1024:
                self._shares.clear()
            share = self._shares[rate] = rate.per_share(self.options.instances)
        return share

    def _recovered(self) -> None:
        since = self._degraded_since
        self._degraded_since = None
        degraded_for = 0.0 if since is None else self._clock.monotonic() - since
        self._emit("recovered", Severity.INFO, {"degraded_for": degraded_for})

    def _note_denial(self, key: str) -> None:
        """Count a primary denial; many distinct keys denied at once suggests a broken limiter."""
        now = self._clock.monotonic()
        if now - self._fault_window_start >= self.options.fault_window:
            self._fault_window_start = now
            self._denied_keys.clear()
            self._fault_reported = False
        if self._fault_reported:
            return
        self._denied_keys.add(key)
        if len(self._denied_keys) >= self.options.fault_keys:
            self._fault_reported = True
            self.stats.suspected_faults += 1
            self._emit(
                "suspected_limiter_fault",
                Severity.WARNING,
                {
                    "distinct_keys_denied": len(self._denied_keys),
                    "window": self.options.fault_window,
                },
            )
            self._denied_keys.clear()

    def _emit(self, name: str, severity: Severity, attributes: dict[str, Any]) -> None:
        self._events.emit(Event(EVENT_SOURCE, name, severity, attributes, self._clock.monotonic()))

    def __repr__(self) -> str:
        state = "degraded" if self.degraded else "healthy"
        return f"FailOpenGuard({self.primary!r}, mode={self.options.mode.value}, {state})"


@runtime_checkable
class _KnowsRates(Protocol):
    def rate_for(self, key: str) -> Rate: ...


class _Malformed(Exception):
    """The primary answered something that is not a well-formed Decision (a breaker failure)."""


def _malformed(decision: Decision) -> bool:
    """A denial must be a real one: bool, counts >= 0, and a finite positive retry_after."""
    if decision.allowed is not False:
        return True
    remaining, retry_after, reset_after = (
        decision.remaining,
        decision.retry_after,
        decision.reset_after,
    )
    return not (
        type(remaining) is int
        and remaining >= 0
        and isinstance(retry_after, (int, float))
        and math.isfinite(retry_after)
        and retry_after > 0
        and isinstance(reset_after, (int, float))
        and math.isfinite(reset_after)
        and reset_after >= 0
    )


def _named_unavailable(error: BaseException) -> bool:
    return any(kind.__name__ in ("ConnectionError", "TimeoutError") for kind in type(error).__mro__)


class _Budget:
    """The time budget of one waiting decision, watched by a :class:`_Watchdog`."""

    __slots__ = ("deadline", "expired", "finished", "task")

    def __init__(self, deadline: float, task: asyncio.Task[Any] | None) -> None:
        self.deadline = deadline
        self.task = task
        self.expired = False
        self.finished = False


class _Watchdog:
    """One task that enforces the budgets of every waiting decision of a guard, in order.

    A spent budget cancels the caller's task, exactly as ``asyncio.timeout`` does (the
    primary sees a cancellation where it waits), and :meth:`finish` takes that cancellation
    back. Every budget has the same length, so deadlines come in the order budgets start: a
    deque suffices, and the task sleeps until the oldest unfinished deadline. It exits once no
    budget is left and is started again by the next one.
    """

    def __init__(self, clock: Clock, seconds: float) -> None:
        self._clock = clock
        self._seconds = seconds
        self._budgets: collections.deque[_Budget] = collections.deque()
        self._task: asyncio.Task[None] | None = None

    def start(self, task: asyncio.Task[Any] | None) -> _Budget:
        """A budget for the decision ``task`` is about to wait for (None: no task, no budget)."""
        budget = _Budget(self._clock.monotonic() + self._seconds, task)
        if task is None:
            return budget
        self._budgets.append(budget)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._watch(), name="FailOpenGuard.watchdog"
            )
        return budget

    def finish(self, budget: _Budget, cancelling: int) -> bool:
        """The decision ended; True if it ended because its budget ran out.

        ``cancelling`` is the task's ``cancelling()`` count when the budget started: a spent
        budget's cancellation is taken back, and only a task cancelled from elsewhere stays
        cancelled. Finished budgets are dropped at once when they are the oldest (they usually
        are), so they do not pile up between the watchdog's wake-ups.
        """
        budget.finished = True
        budgets = self._budgets
        while budgets and budgets[0].finished:
            budgets.popleft()
        task = budget.task
        if not budget.expired or task is None:
            return False
        return task.uncancel() <= cancelling

    async def aclose(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._budgets.clear()

    async def _watch(self) -> None:
        budgets = self._budgets
        try:
            while budgets:
                head = budgets[0]
                if head.finished:
                    budgets.popleft()
                    continue
                delay = head.deadline - self._clock.monotonic()
                if delay > 0:
                    await self._clock.sleep(delay)
                    continue
                budgets.popleft()
                head.expired = True
                if head.task is not None:
                    head.task.cancel("FailOpenGuard: the primary ran out of its time budget")
        finally:
            self._task = None


class _Delegate:
    """``await``-able that finishes a coroutine whose first step already ran (by hand).

    It forwards every later step between the task and the coroutine, as ``await`` does
    (PEP 380): values sent, exceptions thrown (a cancellation included), and close.
    """

    __slots__ = ("_coroutine", "_first")

    def __init__(self, coroutine: Coroutine[Any, Any, Decision], first: Any) -> None:
        self._coroutine = coroutine
        self._first = first

    def __await__(self) -> Generator[Any, Any, Decision]:
        coroutine = self._coroutine
        waiting = self._first
        while True:
            try:
                try:
                    received = yield waiting
                except GeneratorExit:
                    coroutine.close()
                    raise
                except BaseException as thrown:
                    waiting = coroutine.throw(thrown)
                else:
                    waiting = coroutine.send(received)
            except StopIteration as done:
                result: Decision = done.value
                return result
