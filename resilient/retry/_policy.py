"""A retry policy on tenacity: full-jitter exponential backoff, caps on attempts and on total
time, ``Retry-After`` honoured, a deadline given to every attempt, a shared retry budget.

``await policy.call(fn, *args, **kwargs)`` awaits ``fn(*args, **kwargs)`` and, while it fails
with a retryable error, tries again. ``await policy.call_with_deadline(fn, *args, **kwargs)``
does the same with ``fn(deadline, *args, **kwargs)``: each attempt gets a :class:`Deadline`
(its number, and the time the whole call must end by), to bound its own work, e.g.
``aiohttp.ClientTimeout(total=deadline.remaining())``. The policy never cancels an attempt: it
stops starting them.

The success path does none of the retry machinery: the first attempt is awaited directly,
with one clock read, the budget's ``record_request()`` (when there is a budget) and a count.
Only its first retryable failure builds a tenacity ``AsyncRetrying`` for the call, fed from
the options: ``stop_after_attempt(attempts) | _OutOfTime | _OutOfBudget``, a full-jitter wait
that honours ``Retry-After``, ``retry_if_exception(policy.retryable)``, and the injected
clock's ``sleep``. The failure it starts from is its first attempt's outcome.

On a retryable failure, in this order: the last attempt made gives up (``attempts``); a wait
that would end at or past the call's deadline gives up at once rather than sleep
(``time``: a ``Retry-After`` beyond the deadline gives up too); a budget with no retry left
gives up at once (``budget``). Otherwise the policy emits ``retrying`` and sleeps, then spends
one retry from the budget as the attempt starts; a refusal then (another caller took the last
one meanwhile) gives up as well. A call that gives up raises its last attempt's error, as it
was, after a ``gave_up`` event: no error type of its own. A caller cancelled while waiting
spends nothing; a retry is counted in the budget only when its attempt starts.

What the caller passes is checked before anything is counted: ``fn`` must be callable, and
return an awaitable; an exception raised by calling it (a wrong argument) is raised as it is.
None of these records a request in the shared budget, or spends from it.
"""

from __future__ import annotations

import inspect
import logging
import math
import random as _random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import CoroutineType
from typing import Any, Concatenate, ParamSpec, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from resilient._validate import Instance, Text, check, shown
from resilient.clock import SYSTEM_CLOCK, Clock
from resilient.errors import ArgumentError, ArgumentTypeError
from resilient.events import DEFAULT_EVENTS, Emitter, EventBus
from resilient.retry._budget import RetryBudget
from resilient.retry._events import (
    GAVE_UP_ATTEMPTS,
    GAVE_UP_BUDGET,
    GAVE_UP_TIME,
    RETRY_EVENT_SOURCE,
    RetryGaveUp,
    Retrying,
)
from resilient.retry._faults import retry_after_of
from resilient.retry._options import DEFAULT_RETRY_OPTIONS, RetryOptions

__all__ = ["Deadline", "RetryPolicy", "RetryStats"]

_log = logging.getLogger("resilient.retry")

P = ParamSpec("P")
T = TypeVar("T")


class Deadline:
    """What one attempt of :meth:`RetryPolicy.call_with_deadline` is given: its number and
    the time, on the policy's clock, by which the whole call must end."""

    __slots__ = ("_clock", "at", "attempt")

    def __init__(self, at: float, attempt: int, clock: Clock) -> None:
        self.at = at
        """The clock time the call must end by (``inf`` when the policy has no time cap)."""
        self.attempt = attempt
        """This attempt's number, 1 for the first."""
        self._clock = clock

    def remaining(self) -> float:
        """Seconds left until :attr:`at` (0 once it passed; ``inf`` without a time cap)."""
        return max(0.0, self.at - self._clock.monotonic())

    def __repr__(self) -> str:
        return f"Deadline(attempt={self.attempt}, remaining={self.remaining():.3f})"


@dataclass(frozen=True, slots=True)
class RetryStats:
    """What a :class:`RetryPolicy` counted since it was made."""

    calls: int
    """Calls whose first attempt started."""
    retries: int
    """Attempts after the first that started."""
    gave_up_attempts: int
    """Calls that ended on a retryable error after their last attempt."""
    gave_up_time: int
    """... as the next attempt could not start before the deadline."""
    gave_up_budget: int
    """... as the retry budget refused the retry."""


class RetryPolicy:
    """Calls a dependency and retries its transient faults (see the module docstring).

    ``name`` names the dependency in events. ``budget`` is the :class:`RetryBudget` every
    retry spends from (share one among every client of a provider); None retries within the
    options alone. ``random`` draws the jitter (a seeded :class:`random.Random` makes the
    waits repeatable); by default each policy has its own.
    """

    __slots__ = (
        "_budget",
        "_calls",
        "_clock",
        "_emit",
        "_gave_up",
        "_random",
        "_retries",
        "_retry_on",
        "_stop_attempts",
        "_timeout",
        "name",
        "options",
    )

    def __init__(
        self,
        name: str,
        options: RetryOptions = DEFAULT_RETRY_OPTIONS,
        *,
        budget: RetryBudget | None = None,
        random: _random.Random | None = None,
        clock: Clock = SYSTEM_CLOCK,
        events: EventBus = DEFAULT_EVENTS,
    ) -> None:
        self.name = check("RetryPolicy.name", name, Text(non_empty=True))
        self.options = check(
            "RetryPolicy.options", options, Instance(RetryOptions, "a RetryOptions")
        )
        if budget is not None:
            check("RetryPolicy.budget", budget, Instance(RetryBudget, "a RetryBudget or None"))
        if random is not None:
            check("RetryPolicy.random", random, Instance(_random.Random, "a random.Random or None"))
        check("RetryPolicy.clock", clock, Instance(Clock, "a Clock"))
        check("RetryPolicy.events", events, Instance(EventBus, "an EventBus"))
        self._budget = budget
        self._random = random if random is not None else _random.Random()
        self._clock = clock
        self._emit = Emitter(RETRY_EVENT_SOURCE, events, clock)
        self._timeout = options.timeout
        self._retry_on = options.retry_on
        self._stop_attempts = stop_after_attempt(options.attempts)
        self._calls = 0
        self._retries = 0
        self._gave_up = {GAVE_UP_ATTEMPTS: 0, GAVE_UP_TIME: 0, GAVE_UP_BUDGET: 0}

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``await fn(*args, **kwargs)``, retried on a retryable error; the last error is
        raised when the policy gives up."""
        started = self._clock.monotonic()
        if not callable(fn):
            raise ArgumentTypeError(f"RetryPolicy.call(fn) must be a callable, got {shown(fn)}")
        awaitable = fn(*args, **kwargs)
        # A coroutine, by its type first: 18 ns, where inspect.isawaitable takes 52 ns (timeit).
        if type(awaitable) is not CoroutineType and not inspect.isawaitable(awaitable):
            raise _not_awaitable("call", awaitable)
        if self._budget is not None:
            self._budget.record_request()
        self._calls += 1
        try:
            return await awaitable
        except Exception as error:
            if not self.retryable(error):
                raise
            first = error
        return await self._retry(first, started, fn, args, kwargs, with_deadline=False)

    async def call_with_deadline(
        self,
        fn: Callable[Concatenate[Deadline, P], Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``await fn(deadline, *args, **kwargs)``, retried as :meth:`call` does; each attempt
        gets its own :class:`Deadline`."""
        started = self._clock.monotonic()
        if not callable(fn):
            raise ArgumentTypeError(
                f"RetryPolicy.call_with_deadline(fn) must be a callable, got {shown(fn)}"
            )
        awaitable = fn(Deadline(started + self._timeout, 1, self._clock), *args, **kwargs)
        if type(awaitable) is not CoroutineType and not inspect.isawaitable(awaitable):
            raise _not_awaitable("call_with_deadline", awaitable)
        if self._budget is not None:
            self._budget.record_request()
        self._calls += 1
        try:
            return await awaitable
        except Exception as error:
            if not self.retryable(error):
                raise
            first = error
        return await self._retry(first, started, fn, args, kwargs, with_deadline=True)

    def retryable(self, error: BaseException) -> bool:
        """Whether the policy retries ``error``: an ``Exception`` that is no
        :class:`~resilient.errors.ArgumentError` and matches ``options.retry_on`` (a
        predicate that raises matches nothing, and is logged)."""
        if not isinstance(error, Exception) or isinstance(error, ArgumentError):
            return False
        for entry in self._retry_on:
            if isinstance(entry, type):
                if isinstance(error, entry):
                    return True
                continue
            try:
                if entry(error):
                    return True
            except Exception:
                _log.exception("retry policy %r: retry_on predicate %r failed", self.name, entry)
        return False

    @property
    def stats(self) -> RetryStats:
        """Calls, retries and give-ups (by reason) since the policy was made."""
        gave_up = self._gave_up
        return RetryStats(
            self._calls,
            self._retries,
            gave_up[GAVE_UP_ATTEMPTS],
            gave_up[GAVE_UP_TIME],
            gave_up[GAVE_UP_BUDGET],
        )

    async def _retry(
        self,
        first: Exception,
        started: float,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        with_deadline: bool,
    ) -> T:
        """Retry after the first attempt failed with ``first`` (retryable), through tenacity."""
        run = _Run(self, started)
        stop = self._stop_attempts | _OutOfTime(run) | _OutOfBudget(run)
        retrying = AsyncRetrying(
            sleep=self._clock.sleep,
            stop=stop,
            wait=_FullJitter(run),
            retry=retry_if_exception(self.retryable),
            before_sleep=run.retrying,
            retry_error_callback=run.give_up,
        )
        budget, clock = self._budget, self._clock
        result: T
        async for attempt in retrying:
            number = attempt.retry_state.attempt_number
            if number == 1:
                with attempt:
                    raise first  # the first attempt's outcome, already known
                continue
            if budget is not None and not budget.try_spend():
                run.reason = GAVE_UP_BUDGET
                run.stop(number - 1)
                break
            self._retries += 1
            with attempt:
                if with_deadline:
                    result = await fn(Deadline(run.at, number, clock), *args, **kwargs)
                else:
                    result = await fn(*args, **kwargs)
        if run.gave_up:
            raise run.error
        return result


class _Run:
    """One call's retries: its deadline, the wait drawn for each attempt, why it gave up."""

    __slots__ = (
        "_delay",
        "_delay_for",
        "_retry_after",
        "at",
        "error",
        "gave_up",
        "policy",
        "reason",
        "started",
    )

    error: BaseException
    """The last attempt's error (set by :meth:`delay` or :meth:`give_up`, read after them)."""
    _delay: float
    """The wait drawn after attempt ``_delay_for`` (set by :meth:`delay`, read after it)."""
    _retry_after: float | None

    def __init__(self, policy: RetryPolicy, started: float) -> None:
        self.policy = policy
        self.started = started
        self.at = started + policy._timeout
        self.reason = GAVE_UP_ATTEMPTS
        self.gave_up = False
        self._delay_for = 0

    def delay(self, state: RetryCallState) -> float:
        """The wait after attempt ``state.attempt_number`` (drawn once per attempt)."""
        number = state.attempt_number
        if number != self._delay_for:
            outcome = state.outcome
            assert outcome is not None
            error = outcome.exception()
            assert error is not None
            self.error = error
            options = self.policy.options
            try:
                nominal = options.backoff_initial * options.backoff_multiplier ** (number - 1)
            except OverflowError:
                nominal = math.inf
            nominal = min(options.backoff_max, nominal)
            wait = nominal * (1.0 - options.jitter * self.policy._random.random())
            retry_after = retry_after_of(error)
            if retry_after is not None and retry_after > wait:
                wait = retry_after
            self._delay_for, self._delay, self._retry_after = number, wait, retry_after
        return self._delay

    def retrying(self, state: RetryCallState) -> None:
        policy = self.policy
        policy._emit(
            Retrying(
                policy=policy.name,
                attempt=state.attempt_number,
                error=_described(self.error),
                delay=self._delay,
                retry_after=self._retry_after,
            )
        )

    def give_up(self, state: RetryCallState) -> None:
        """tenacity's ``retry_error_callback``: a stop strategy ended the retries."""
        outcome = state.outcome
        assert outcome is not None
        error = outcome.exception()
        assert error is not None
        self.error = error
        self.stop(state.attempt_number)

    def stop(self, attempts: int) -> None:
        """Give up after ``attempts``: count, emit; the loop then raises :attr:`error`."""
        self.gave_up = True
        policy = self.policy
        policy._gave_up[self.reason] += 1
        policy._emit(
            RetryGaveUp(
                policy=policy.name,
                reason=self.reason,
                attempts=attempts,
                error=_described(self.error),
                elapsed=policy._clock.monotonic() - self.started,
            )
        )


class _FullJitter(wait_base):
    """The wait before the next attempt: AWS's full jitter over a capped exponential, at
    least the ``Retry-After`` the error asked for."""

    def __init__(self, run: _Run) -> None:
        self.run = run

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.run.delay(retry_state)


class _OutOfTime(stop_base):
    """Stop when the next attempt could not start before the call's deadline."""

    def __init__(self, run: _Run) -> None:
        self.run = run

    def __call__(self, retry_state: RetryCallState) -> bool:
        run = self.run
        if run.policy._clock.monotonic() + run.delay(retry_state) >= run.at:
            run.reason = GAVE_UP_TIME
            return True
        return False


class _OutOfBudget(stop_base):
    """Stop at once, rather than wait for nothing, when the budget has no retry left (the
    refusal is counted by the budget)."""

    def __init__(self, run: _Run) -> None:
        self.run = run

    def __call__(self, retry_state: RetryCallState) -> bool:
        budget = self.run.policy._budget
        if budget is not None and budget.available < 1 and not budget.try_spend():
            self.run.reason = GAVE_UP_BUDGET
            return True
        return False


def _not_awaitable(method: str, value: object) -> ArgumentTypeError:
    return ArgumentTypeError(
        f"RetryPolicy.{method}(fn) must return an awaitable, got {shown(value)}"
    )


def _described(error: BaseException) -> str:
    """``Type: message`` (the message in at most about 100 characters)."""
    try:
        text = str(error)
    except Exception:
        text = "<a message that cannot be shown>"
    name = type(error).__name__
    return f"{name}: {shown(text)[1:-1]}" if text else name
