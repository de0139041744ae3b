"""Failover: a request goes to the first available provider, moves on when it fails, is hedged
when it is slow, and gets a degraded answer when nobody can give a real one.

The guarantees:

- A request ends within its deadline (``timeout``): every attempt still running then is
  cancelled, and the fallback answers (marked ``degraded``) or
  :class:`~resilient.errors.ProvidersUnavailableError` says why.
- Each provider is asked at most once per request, through its own breaker (an open one is
  passed over at once) and within its own rate limit (never exceeded: an excess request goes
  to the next provider).
- At most one hedge per request: when the first attempt has taken longer than its provider's
  recent ``hedge_quantile`` latency, one more attempt goes to the next provider; the first
  answer wins and the other attempt is cancelled (and counts against nobody). A half-open
  breaker's probe is never hedged: its outcome is what closes the breaker.
- A provider's health (the share of its recent attempts that succeeded) passes it over while
  another provider is healthy, but never stops its breaker's probes; once its breaker closes
  again its health starts afresh.
- Attempts beyond the first (a failover after a failure, a hedge) are paid from the shared
  budget when one is given: a refused spend ends the request (fallback or error), so an
  outage never multiplies the load on the providers beyond the budget.
- A provider that comes back (its breaker closes) takes its share again over
  ``slow_start_window``, not at once.
- Only a provider's faults (``options.failures``) count against it; a caller's error is raised
  as it is. A cancelled request leaks nothing: every attempt is cancelled, every permit freed.
"""

from __future__ import annotations

import asyncio
import math
import random as random_module
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from resilient._validate import Instance, Number, Text, check
from resilient.breaker import BreakerState, CircuitBreaker, Permit
from resilient.clock import SYSTEM_CLOCK, Clock
from resilient.errors import ArgumentTypeError, ArgumentValueError, ProvidersUnavailableError
from resilient.events import DEFAULT_EVENTS, Emitter, EventBus
from resilient.failover._events import (
    FAILOVER_EVENT_SOURCE,
    FailedOver,
    FallbackUsed,
    Hedged,
    ProviderRecovering,
)
from resilient.failover._lane import Lane, Provider
from resilient.failover._options import (
    DEFAULT_FAILOVER_OPTIONS,
    PROVIDER_BREAKER_OPTIONS,
    FailoverOptions,
)

__all__ = ["AttemptBudget", "Failover", "FailoverResult"]

R = TypeVar("R")
T = TypeVar("T")

_TIMEOUT = Number(min=0, min_open=True, unit="seconds")


@runtime_checkable
class AttemptBudget(Protocol):
    """What a failover needs of a shared budget (``resilient.retry.RetryBudget`` is one)."""

    def record_request(self) -> None: ...

    def try_spend(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class FailoverResult(Generic[T]):
    """An answer, and where it came from."""

    value: T
    provider: str | None
    """The provider that answered; None for the fallback's answer."""
    degraded: bool
    """True when the fallback answered: no provider could."""
    attempts: int
    """Attempts sent for this request (hedges included)."""
    hedged: bool
    """A hedge was sent."""


class Failover(Generic[R, T]):
    """Requests over ``providers``, in order of preference (see the module doc).

    ``budget`` (optional) pays for every attempt beyond a request's first, and may be shared
    with other clients of the same providers; ``fallback(request, error)`` (optional) gives a
    degraded answer when no provider can. Use one from one event loop.
    """

    def __init__(
        self,
        providers: Sequence[Provider[R, T]],
        options: FailoverOptions = DEFAULT_FAILOVER_OPTIONS,
        *,
        budget: AttemptBudget | None = None,
        fallback: Callable[[R, ProvidersUnavailableError], Awaitable[T]] | None = None,
        name: str = "failover",
        random: random_module.Random | None = None,
        clock: Clock = SYSTEM_CLOCK,
        events: EventBus = DEFAULT_EVENTS,
    ) -> None:
        if not isinstance(providers, Sequence) or isinstance(providers, str) or not providers:
            raise ArgumentTypeError("Failover.providers must be a non-empty sequence of Provider")
        for provider in providers:
            check("Failover.providers[]", provider, Instance(Provider, "a Provider"))
        names = [provider.name for provider in providers]
        if len(set(names)) != len(names):
            raise ArgumentValueError(f"Failover.providers must have distinct names, got {names}")
        self.options: FailoverOptions = check(
            "Failover.options", options, Instance(FailoverOptions, "a FailoverOptions")
        )
        if budget is not None:
            check("Failover.budget", budget, Instance(AttemptBudget, "an AttemptBudget or None"))
        if fallback is not None and not callable(fallback):
            raise ArgumentTypeError(f"Failover.fallback must be callable, got {fallback!r}")
        self.name: str = check("Failover.name", name, Text(non_empty=True))
        check("Failover.clock", clock, Instance(Clock, "a Clock"))
        check("Failover.events", events, Instance(EventBus, "an EventBus"))
        if random is not None:
            check("Failover.random", random, Instance(random_module.Random, "a random.Random"))
        self.budget = budget
        self.fallback = fallback
        self._clock = clock
        self._emit = Emitter(FAILOVER_EVENT_SOURCE, events, clock)
        self._random = random or random_module.Random()
        self._failures = options.failures
        from resilient.ratelimit import LocalLimiter

        self.lanes: tuple[Lane, ...] = tuple(
            Lane(
                provider,
                provider.breaker
                or CircuitBreaker(
                    f"{name}/{provider.name}", PROVIDER_BREAKER_OPTIONS, clock=clock, events=events
                ),
                None if provider.rate is None else LocalLimiter(provider.rate, clock=clock),
                options.latency_samples,
            )
            for provider in providers
        )

    def stats(self) -> dict[str, Any]:
        """Each provider's :class:`~resilient.failover.ProviderStats`, by name."""
        return {lane.name: lane.stats for lane in self.lanes}

    # -- choosing ------------------------------------------------------------------------------

    def _choose(self, tried: set[str], *, needed: bool = True) -> tuple[Lane, Permit] | None:
        """The first provider not yet tried that may be asked now, with its permit. When the
        attempt is ``needed`` (a first attempt, a failover) and every provider is passed over
        for its health or its slow start, they are asked all the same; a hedge is not needed,
        and takes nobody's share beyond it (hedges took a provider in slow start to 52
        attempts a second where its share was 22: provider-outage beside a CPU hog)."""
        options = self.options
        now = self._clock.monotonic()
        candidates = [lane for lane in self.lanes if lane.name not in tried]
        for lane in candidates:
            if lane.watch(now):
                self._emit(ProviderRecovering(self.name, lane.name, options.slow_start_window))
        healthy = any(
            lane.health >= options.min_health and lane.breaker.allows_call() for lane in candidates
        )
        passed_over: list[Lane] = []
        for lane in candidates:
            probing = lane.breaker.state is BreakerState.HALF_OPEN
            if (healthy and lane.health < options.min_health and not probing) or (
                self._random.random()
                >= lane.share(now, options.slow_start_window, options.slow_start_min_share)
            ):
                lane.stats.passed_over += 1
                passed_over.append(lane)
                continue
            chosen = self._admit(lane)
            if chosen is not None:
                return chosen
        # Asked all the same: only those passed over (one the breaker or the rate limit refused
        # just now would refuse again, and its refusal is counted once).
        for lane in passed_over if needed else ():
            chosen = self._admit(lane)
            if chosen is not None:
                return chosen
        return None

    def _admit(self, lane: Lane) -> tuple[Lane, Permit] | None:
        """``lane`` with a permit of its breaker, if its breaker and its rate limit let a call
        through now; else None (a refusal of its rate limit is counted)."""
        if not lane.breaker.allows_call():
            return None
        if lane.limiter is not None and not lane.limiter.decide_now(lane.name).allowed:
            lane.stats.rate_limited += 1
            return None
        permit = lane.breaker.try_acquire()
        return None if permit is None else (lane, permit)

    def _hedge_delay(self, lane: Lane, timeout: float) -> float:
        measured = lane.quantile(self.options.hedge_quantile)
        delay = timeout / 4 if measured is None else measured
        return max(self.options.hedge_min_delay, delay)

    # -- asking --------------------------------------------------------------------------------

    async def _attempt(self, lane: Lane, permit: Permit, request: R) -> T:
        started = self._clock.monotonic()
        lane.stats.attempts += 1
        try:
            value: T = await lane.provider.call(request)
        except self._failures as error:
            permit.failed(error)
            lane.record_failure(self.options.health_weight)
            raise
        except BaseException:
            permit.released()  # a caller's error or a cancellation: nobody's fault
            raise
        permit.succeeded()
        lane.record_success(self._clock.monotonic() - started, self.options.health_weight)
        return value

    async def call(self, request: R, *, timeout: float | None = None) -> FailoverResult[T]:
        """Ask the providers for ``request`` within ``timeout`` seconds (``options.timeout``
        when None): see the module doc for what is guaranteed."""
        seconds = (
            self.options.timeout
            if timeout is None
            else check("Failover.call(timeout)", timeout, _TIMEOUT)
        )
        if self.budget is not None:
            self.budget.record_request()
        clock = self._clock
        end = clock.monotonic() + seconds
        tried: set[str] = set()
        errors: list[tuple[str, str]] = []
        running: dict[asyncio.Task[T], Lane] = {}
        attempts = 0
        hedged = False
        hedge_lane: Lane | None = None
        hedge_delay = 0.0
        started = clock.monotonic()
        hedge_at = math.inf
        reason = "every provider failed or is unavailable"

        def launch(lane: Lane, permit: Permit) -> None:
            nonlocal attempts
            tried.add(lane.name)
            attempts += 1
            task = asyncio.ensure_future(self._attempt(lane, permit, request))
            running[task] = lane

        try:
            first = self._choose(tried)
            if first is not None:
                launch(*first)
                # A probe is never hedged: a hedge that answers first would cancel it, and a
                # half-open breaker whose probes are all cancelled never learns the provider
                # is back (a 300 ms provider behind a 25 ms hedge delay stayed out for good).
                if self.options.hedge and len(self.lanes) > 1 and not first[1].probe:
                    hedge_delay = self._hedge_delay(first[0], seconds)
                    hedge_at = clock.monotonic() + hedge_delay
            while running:
                now = clock.monotonic()
                if now >= end:
                    reason = "the deadline passed"
                    break
                if now >= hedge_at:
                    hedge_at = math.inf
                    hedge = self._choose(tried, needed=False)
                    if hedge is not None:
                        if self.budget is None or self.budget.try_spend():
                            primary = next(iter(running.values()))
                            hedge_lane = hedge[0]
                            hedge_lane.stats.hedges += 1
                            hedged = True
                            self._emit(
                                Hedged(self.name, primary.name, hedge_lane.name, now - started)
                            )
                            launch(*hedge)
                        else:
                            hedge[1].released()
                    continue
                done = await self._wait(running, min(hedge_at, end) - now)
                for task in done:
                    lane = running.pop(task)
                    error = task.exception()
                    if error is None:
                        if lane is hedge_lane:
                            lane.stats.hedges_won += 1
                            for outrun in running.values():
                                outrun.record_outrun(hedge_delay)
                        return FailoverResult(task.result(), lane.name, False, attempts, hedged)
                    if not isinstance(error, self._failures):
                        raise error  # the caller's, as it is
                    errors.append((lane.name, f"{type(error).__name__}: {error}"))
                    if running:
                        continue  # a hedge is still out: it may answer
                    following = self._choose(tried)
                    if following is None:
                        break
                    if self.budget is not None and not self.budget.try_spend():
                        following[1].released()
                        reason = "the retry budget is spent"
                        break
                    self._emit(FailedOver(self.name, lane.name, following[0].name, errors[-1][1]))
                    launch(*following)
        finally:
            await _cancel(running)
        failure = ProvidersUnavailableError(self.name, reason, tuple(errors))
        if self.fallback is None:
            raise failure
        self._emit(FallbackUsed(self.name, reason))
        value = await self.fallback(request, failure)
        return FailoverResult(value, None, True, attempts, hedged)

    async def _wait(self, running: dict[asyncio.Task[T], Lane], seconds: float) -> set[Any]:
        """The attempts done within ``seconds`` of the injected clock (maybe none)."""
        timer = asyncio.ensure_future(self._clock.sleep(max(0.0, seconds)))
        try:
            done, _ = await asyncio.wait([*running, timer], return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        done.discard(timer)
        return done


async def _cancel(running: dict[asyncio.Task[Any], Lane]) -> None:
    """Cancel every attempt still out and wait for each to let go of its permit."""
    for task, lane in running.items():
        if task.cancel():
            lane.stats.cancelled += 1
    if running:
        await asyncio.gather(*running, return_exceptions=True)
    running.clear()
