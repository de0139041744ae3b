"""The fail-open guard: a limiter that cannot answer never turns into "over the limit".

:class:`FailOpenGuard` asks its primary limiter (say, a :class:`RedisLimiter`) within a time
budget. When the primary times out, raises (connection error, or anything else: protocol
garbage), returns something that is not a well-formed :class:`Decision`, or its circuit breaker
is open, the guard answers from its fallback: any :class:`Limiter`, typically a
:class:`LocalLimiter` holding this instance's share of the global limit, so an abusive key is
still limited, and nobody else is denied because of the fault. The answer says so:
``source=FALLBACK`` and a ``reason``. A fallback that fails in turn (raises, answers garbage,
or overruns the same budget) does not deny either: the guard allows, with
``source=PASS_THROUGH``. Configured ``mode=PASS_THROUGH``, it allows outright instead of asking
a fallback. Failing closed (raising :class:`LimiterUnavailable`, never a denial) exists only as
the explicit opt-in ``mode=FAIL_CLOSED``.

While the breaker is open the primary is not called at all; after the breaker's reset timeout
one probe goes to the primary, and its success brings the guard back (``recovered`` event).

The time budget runs on the injected clock (:class:`~resilient._deadline.Deadlines`: one
watchdog task per guard, not a timer per decision); a spent budget cancels the waiting call
exactly as ``asyncio.timeout`` would (the primary sees a cancellation where it waits). A
limiter that declares ``never_waits`` (a :class:`LocalLimiter`) is awaited without a budget:
it cannot be interrupted, so there would be nothing to time.

Events (source ``"ratelimit.guard"``, declared in ``_events.py``): ``degraded`` (with the
reason) when the guard starts answering without its primary, ``recovered`` when the primary
answers again, and ``suspected_limiter_fault`` when the primary denies many distinct keys
within a short window (a broken limiter looks like that; the event changes no decision).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from resilient._deadline import Deadlines
from resilient._validate import Instance, Integer, check
from resilient.breaker import CircuitBreaker, Permit
from resilient.clock import SYSTEM_CLOCK, Clock
from resilient.errors import (
    ArgumentError,
    ArgumentTypeError,
    ArgumentValueError,
    LimiterUnavailable,
)
from resilient.events import DEFAULT_EVENTS, Emitter, EventBus
from resilient.ratelimit._events import (
    GUARD_EVENT_SOURCE,
    GuardDegraded,
    GuardRecovered,
    SuspectedLimiterFault,
)
from resilient.ratelimit._options import (
    DEFAULT_GUARD_OPTIONS,
    GUARD_BREAKER_OPTIONS,
    GuardMode,
    GuardOptions,
)
from resilient.ratelimit._types import (
    Decision,
    DecisionSource,
    Limiter,
    Rate,
    new_decision,
    store_silence,
)

__all__ = ["FailOpenGuard", "GuardStats"]


@dataclass(slots=True)
class GuardStats:
    """Counters of one :class:`FailOpenGuard` since it was made."""

    primary: int = 0
    """Decisions answered by the primary."""
    fallback: int = 0
    """Decisions answered by the fallback limiter."""
    pass_through: int = 0
    """Decisions that allowed outright (mode PASS_THROUGH, or a fallback that failed)."""
    fail_closed: int = 0
    """Decisions refused with :class:`LimiterUnavailable` (mode FAIL_CLOSED)."""
    timeouts: int = 0
    """Primary calls that ran out of the time budget while the primary's store was silent for
    the whole budget (counted against the primary)."""
    local_timeouts: int = 0
    """Primary calls that ran out of the time budget while the primary's store was not at
    fault: the time went on waiting in this process (not counted against the primary)."""
    unavailable: int = 0
    """Primary calls that raised one of ``GuardOptions.unavailable``."""
    errors: int = 0
    """Primary calls that raised anything else."""
    malformed: int = 0
    """Primary answers that were not a well-formed Decision."""
    breaker_open: int = 0
    """Decisions taken without asking the primary because the breaker refused."""
    fallback_failures: int = 0
    """Fallback decisions that failed (raised, timed out, malformed): the guard allowed."""
    suspected_faults: int = 0
    """``suspected_limiter_fault`` events emitted."""


class FailOpenGuard:
    """A :class:`Limiter` that asks ``primary`` and degrades, never to a false denial.

    ``fallback`` (required in mode FALLBACK) is any :class:`Limiter`; typically a
    :class:`LocalLimiter` holding this instance's share of the global limit, e.g.
    ``LocalLimiter(rate.per_share(instances))``. ``breaker`` defaults to a
    :class:`CircuitBreaker` with :data:`GUARD_BREAKER_OPTIONS` on the same clock and events.
    Nothing a caller passes changes the guard's state for other callers: a key that is not a
    str, a cost that is not an int >= 0, a rate that is not a :class:`Rate` raise an
    :class:`~resilient.errors.ArgumentError` before the breaker sees anything, and an
    ``ArgumentError`` a primary raises is the caller's, raised to the caller, never counted
    against the primary (any str is a key; any int >= 0 a cost: one above the rate's largest is
    denied for ever, with the reason). Only faults of the primary count as its failures, and a
    budget that ran out while the primary's store was answering (the time went on waiting in
    this process, e.g. behind a thousand other callers) is not one: the caller still gets its
    answer in budget, from the fallback, with the reason. (The store's silence is measured on
    this process's event loop, so the attribution holds while the loop keeps its own delays
    under the budget: 1,000 callers at once on this machine, measured by
    ``tests/resilient/test_ratelimit_hostile.py``. A burst the loop cannot serve within the
    budget makes the store look slow, and the breaker then sheds load to the fallback.) Nothing
    a primary or a fallback does makes the guard raise, except in mode FAIL_CLOSED. Every permit
    (a half-open probe slot included) is released on every path: return, exception (raised
    synchronously or not) and cancellation. Call :meth:`aclose` to stop the budget's watchdog
    task early.
    """

    never_waits: ClassVar[bool] = False
    """A guard may wait for its primary (within its budget)."""

    def __init__(
        self,
        primary: Limiter,
        options: GuardOptions = DEFAULT_GUARD_OPTIONS,
        *,
        fallback: Limiter | None = None,
        breaker: CircuitBreaker | None = None,
        clock: Clock = SYSTEM_CLOCK,
        events: EventBus = DEFAULT_EVENTS,
    ) -> None:
        self._primary_never_waits = _never_waits("FailOpenGuard.primary", primary)
        self.options = check(
            "FailOpenGuard.options", options, Instance(GuardOptions, "a GuardOptions")
        )
        if fallback is None and options.mode is GuardMode.FALLBACK:
            raise ArgumentValueError(
                "FailOpenGuard.fallback is required in mode FALLBACK: give it "
                "LocalLimiter(rate.per_share(instances)), or choose another GuardOptions.mode"
            )
        self._fallback_never_waits = fallback is not None and _never_waits(
            "FailOpenGuard.fallback", fallback
        )
        self.primary = primary
        self.fallback = fallback
        self.breaker = breaker or CircuitBreaker(
            GUARD_EVENT_SOURCE, GUARD_BREAKER_OPTIONS, clock=clock, events=events
        )
        self.stats = GuardStats()
        self._clock = clock
        self._emit = Emitter(GUARD_EVENT_SOURCE, events, clock)
        self._deadlines = Deadlines(clock, name="FailOpenGuard")
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
        if type(key) is not str:
            raise ArgumentTypeError(f"FailOpenGuard.decide(key) must be a str, got {key!r:.100}")
        if cost != 1 or type(cost) is not int:
            check("FailOpenGuard.decide(cost)", cost, _COST)
        if rate is not None and type(rate) is not Rate:
            raise ArgumentTypeError(f"FailOpenGuard.decide(rate) must be a Rate, got {rate!r}")
        permit = self.breaker.try_acquire()
        if permit is None:
            self.stats.breaker_open += 1
            return await self._degrade(key, cost, rate, "breaker open", None)
        until: float | None = None  # when the caller's budget ends (None: not started)
        if self._primary_never_waits:
            try:
                decision = await self.primary.decide(key, cost=cost, rate=rate)
            except ArgumentError:
                permit.released()  # the caller's mistake says nothing about the primary
                raise
            except Exception as error:
                return await self._fault(permit, key, cost, rate, error, timed_out=False)
            except BaseException:
                permit.released()  # cancelled: neither success nor failure
                raise
        else:
            budget = self._deadlines.within(self.options.timeout)
            try:
                async with budget:
                    until = budget.deadline
                    decision = await self.primary.decide(key, cost=cost, rate=rate)
            except ArgumentError:
                permit.released()
                raise
            except Exception as error:
                return await self._fault(
                    permit, key, cost, rate, error, timed_out=budget.expired, until=until
                )
            except BaseException:
                permit.released()  # cancelled from outside: neither success nor failure
                raise
        if not _well_formed(decision):
            permit.failed(_Malformed(f"primary returned {decision!r}"))
            self.stats.malformed += 1
            return await self._degrade(
                key, cost, rate, "primary returned a malformed decision", None, until
            )
        permit.succeeded()
        self.stats.primary += 1
        if self._degraded_since is not None:
            self._recovered()
        if not decision.allowed:
            self._note_denial(key)
        return decision

    async def aclose(self) -> None:
        """Stop the budget's watchdog (a waiting decision then runs without a budget)."""
        await self._deadlines.aclose()

    # Degrading -------------------------------------------------------------------------------

    async def _fault(
        self,
        permit: Permit,
        key: str,
        cost: int,
        rate: Rate | None,
        error: Exception,
        *,
        timed_out: bool,
        until: float | None = None,
    ) -> Decision:
        """Count the primary's fault against its breaker, classify it, answer without it."""
        if timed_out and self._spent_locally(error, until):
            permit.released()  # the store was answering: the budget went on this process
            self.stats.local_timeouts += 1
            return await self._degrade(
                key, cost, rate, "budget spent waiting in this process", None, until
            )
        if timed_out:
            error = TimeoutError(f"primary took over {self.options.timeout}s")
            self.stats.timeouts += 1
            reason = "primary timeout"
        elif isinstance(error, self.options.unavailable):
            self.stats.unavailable += 1
            reason = f"primary unavailable: {type(error).__name__}"
        else:
            self.stats.errors += 1
            reason = f"primary error: {type(error).__name__}"
        permit.failed(error)
        return await self._degrade(key, cost, rate, reason, error, until)

    async def _degrade(
        self,
        key: str,
        cost: int,
        rate: Rate | None,
        reason: str,
        error: BaseException | None,
        until: float | None = None,
    ) -> Decision:
        """Answer without the primary, as the mode says; the decision carries the reason.
        A fallback that may wait gets what is left of the caller's budget (all of it when the
        budget has not started: ``until`` None), so the answer always comes within it."""
        mode = self.options.mode
        if self._degraded_since is None:
            self._degraded_since = self._clock.monotonic()
            self._emit(GuardDegraded(reason, mode.value))
        if mode is GuardMode.FALLBACK:
            share = None if rate is None else self._share_of(rate)
            answer = await self._ask_fallback(key, cost, share, until)
            if answer is not None:
                self.stats.fallback += 1
                return new_decision(
                    answer.allowed,
                    answer.remaining,
                    answer.retry_after,
                    answer.reset_after,
                    DecisionSource.FALLBACK,
                    reason,
                )
            self.stats.fallback_failures += 1
            reason = f"{reason}; fallback failed"
        elif mode is GuardMode.FAIL_CLOSED:
            self.stats.fail_closed += 1
            raise LimiterUnavailable(f"rate limiter unavailable ({reason})") from error
        self.stats.pass_through += 1
        return new_decision(True, 0, 0.0, 0.0, DecisionSource.PASS_THROUGH, reason)

    async def _ask_fallback(
        self, key: str, cost: int, rate: Rate | None, until: float | None
    ) -> Decision | None:
        """The fallback's well-formed answer by ``until`` (or within a whole budget), or None
        if it has none."""
        fallback = self.fallback
        assert fallback is not None  # checked in __init__
        try:
            if self._fallback_never_waits:
                answer = await fallback.decide(key, cost=cost, rate=rate)
            else:
                left = self.options.timeout
                if until is not None:
                    left = until - self._clock.monotonic()
                async with self._deadlines.within(left):
                    answer = await fallback.decide(key, cost=cost, rate=rate)
        except Exception:
            return None
        return answer if _well_formed(answer) else None

    def _spent_locally(self, timeout: Exception, until: float | None) -> bool:
        """Whether a budget ran out while the primary's store was not silent for all of it
        (a primary says so on its cancellation:
        :func:`~resilient.ratelimit._types.note_store_silence`). The silence is counted up to
        the deadline ``until``, not up to when a busy loop got round to the cancellation: that
        delay is this process's, not the store's."""
        silent_for = store_silence(timeout.__cause__)
        if silent_for is None:
            return False
        if until is not None:
            silent_for -= max(0.0, self._clock.monotonic() - until)
        return silent_for < self.options.timeout

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
        self._emit(GuardRecovered(degraded_for))

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
            self._emit(SuspectedLimiterFault(len(self._denied_keys), self.options.fault_window))
            self._denied_keys.clear()

    def __repr__(self) -> str:
        state = "degraded" if self.degraded else "healthy"
        return f"FailOpenGuard({self.primary!r}, mode={self.options.mode.value}, {state})"


_COST = Integer(min=0)


def _never_waits(where: str, limiter: object) -> bool:
    """The limiter's ``never_waits`` (False when it does not say); a non-bool is refused."""
    if not callable(getattr(limiter, "decide", None)):
        raise ArgumentTypeError(
            f"{where} must be a Limiter (with a decide method), got {limiter!r}"
        )
    never_waits = getattr(limiter, "never_waits", False)
    if not isinstance(never_waits, bool):
        raise ArgumentTypeError(f"{where}.never_waits must be a bool, got {never_waits!r}")
    return never_waits


@runtime_checkable
class _KnowsRates(Protocol):
    def rate_for(self, key: str) -> Rate: ...


class _Malformed(Exception):
    """The primary answered something that is not a well-formed Decision (a breaker failure)."""


def _well_formed(decision: object) -> bool:
    """A Decision, and a denial is a real one: counts >= 0, a positive ``retry_after`` (infinite
    for a request no wait can make allowed), a finite ``reset_after`` >= 0."""
    if type(decision) is not Decision:
        return False
    if decision.allowed is True:
        return True
    if decision.allowed is not False:
        return False
    remaining, retry_after, reset_after = (
        decision.remaining,
        decision.retry_after,
        decision.reset_after,
    )
    return (
        type(remaining) is int
        and remaining >= 0
        and isinstance(retry_after, (int, float))
        and retry_after > 0  # NaN fails this too
        and isinstance(reset_after, (int, float))
        and math.isfinite(reset_after)
        and reset_after >= 0
    )
