"""An asyncio circuit breaker on pybreaker's state machine and storage.

pybreaker keeps the state of a circuit (closed, open, half-open), its counters and its
transitions, but it runs a guarded call *inside* a threading lock and handles coroutines only
through tornado. This module keeps pybreaker for what it does soundly and does the call itself:

- every transition goes through pybreaker (``open()``, ``half_open()``, ``close()``, its
  storage counters and its ``state_change`` listeners), each a short synchronous step: no
  lock is ever held across an ``await``;
- time comes from the injected :class:`~resilient.clock.Clock`: the circuit turns half-open
  ``reset_timeout`` seconds after it opened *on that clock*, so tests run in virtual time;
- half-open admits at most ``half_open_max_calls`` concurrent probes; other callers are
  rejected at once with :class:`CircuitOpenError`. One probe success closes the circuit, one
  probe failure opens it again;
- when to trip is a :class:`TripPolicy` (``_policy.py``): consecutive failures (the default,
  ``failure_threshold`` in a row), a failure rate and a slow-call rate over a count or a time
  window, or any of them (``|``);
- ``isolate()`` forces the circuit open until ``reset()``; ``metrics_only`` never refuses a
  call but counts, transitions and emits as if it did;
- every transition emits a typed event (source ``"breaker"``, see ``_events.py``), and, with a
  :class:`~resilient.breaker.BreakerSync`, is published through Redis for other processes to
  follow (``_sync.py``): no Redis round trip per call.

A success while the circuit is closed and nothing counts against it (the default policy, no
failure since the last success) changes nothing but :attr:`BreakerStats.successes`; the
breaker knows when it is in that *quiet* state and counts such a success without touching
pybreaker's storage, whose failure count is zero then anyway. Any other outcome takes the
full path through the policy and pybreaker.

Outcomes are counted per *permit*. A call that started before a transition (say, while closed)
and ends after it is ignored: it says nothing about the circuit as it is now. A call cancelled
before it ended (``asyncio.CancelledError``, or any ``BaseException`` that is not an
``Exception``) counts as neither success nor failure, and a cancelled probe frees its slot:
cancellation says nothing about the dependency. Neither does a call the caller could not make
(``fn`` not callable with those arguments, or returning no awaitable). An exception listed in
``exclude`` counts as a success (pybreaker's rule: the dependency answered; the answer was a
business error). A timed policy measures a call from its permit, so time a caller spent
queued in this process before it asked is never the dependency's.

Use one breaker from one event loop.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import math
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import pybreaker

from resilient._validate import Instance, Text, check
from resilient.breaker._events import (
    BREAKER_EVENT_SOURCE,
    BreakerClosed,
    BreakerHalfOpened,
    BreakerIsolated,
    BreakerOpened,
)
from resilient.breaker._options import DEFAULT_BREAKER_OPTIONS, BreakerOptions
from resilient.breaker._permit import (
    CLOSED,
    HALF_OPEN,
    ISOLATED,
    OPEN,
    SHADOW,
    BreakerState,
    BreakerStats,
    Calling,
    Permit,
)
from resilient.breaker._policy import ConsecutiveFailures, TripPolicy, TripState
from resilient.clock import SYSTEM_CLOCK, Clock
from resilient.errors import ArgumentTypeError, CircuitOpenError
from resilient.events import DEFAULT_EVENTS, Emitter, EventBus

if TYPE_CHECKING:
    from resilient.breaker._sync import BreakerSync

__all__ = ["CircuitBreaker"]

_log = logging.getLogger("resilient.breaker")

P = ParamSpec("P")
T = TypeVar("T")

_Held = tuple[Permit, "_Held | None"]


class CircuitBreaker:
    """A circuit breaker for coroutines, on pybreaker's state machine (see the module doc).

    Four ways to make a call through it, cheapest first: ``await breaker.call(fn, *args)``;
    ``@breaker`` on an async function; ``async with breaker: ...``; ``async with
    breaker.calling() as permit: ...``. :meth:`try_acquire` / :meth:`acquire` give a
    :class:`Permit` to callers that report the outcome themselves. ``policy`` decides when to
    trip (default :class:`ConsecutiveFailures` of ``options.failure_threshold``); ``sync``
    shares the transitions with other processes through Redis.
    """

    def __init__(
        self,
        name: str,
        options: BreakerOptions = DEFAULT_BREAKER_OPTIONS,
        *,
        policy: TripPolicy | None = None,
        sync: BreakerSync | None = None,
        clock: Clock = SYSTEM_CLOCK,
        events: EventBus = DEFAULT_EVENTS,
    ) -> None:
        self.name = check("CircuitBreaker.name", name, Text(non_empty=True))
        self.options = check(
            "CircuitBreaker.options", options, Instance(BreakerOptions, "a BreakerOptions")
        )
        self.policy: TripPolicy = policy or ConsecutiveFailures(options.failure_threshold)
        self.stats = BreakerStats()
        self._clock = clock
        self._emit = Emitter(BREAKER_EVENT_SOURCE, events, clock)
        self._storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        self._trip_state = TripState(self._storage)
        self._machine = pybreaker.CircuitBreaker(
            fail_max=options.failure_threshold,
            reset_timeout=options.reset_timeout,
            listeners=[_Transitions(self)],
            state_storage=self._storage,
            name=name,
        )
        self._state: BreakerState = CLOSED
        self._generation = 0
        self._closed_permit = Permit(self, 0, probe=False)
        self._probes = 0
        self._half_open_at = 0.0
        self._wait = 0.0
        self._reason = ""
        self._entering: BreakerState | None = None
        self._following = False
        self._timed = bool(getattr(self.policy, "timed", False))
        self._metrics_only = options.metrics_only
        self._held: contextvars.ContextVar[_Held | None] = contextvars.ContextVar(
            f"resilient.breaker {name}", default=None
        )
        # A success of the default policy only ever resets the failure count (a custom policy
        # may count successes: it is always told); a timed policy needs every call's start.
        self._success_only_resets = type(self.policy) is ConsecutiveFailures
        # The shared permit of the closed circuit while it is quiet (see the module doc), else
        # None: while a permit is the quiet one, its success only counts in the stats.
        self._quiet_permit: Permit | None = None
        self._update_quiet()
        self._sync = sync
        if sync is not None:
            sync.attach(self)

    @property
    def state(self) -> BreakerState:
        """The circuit's state now (an open circuit whose reset timeout has passed turns
        half-open when read)."""
        if self._state is OPEN and self._clock.monotonic() >= self._half_open_at:
            self._half_open()
        return self._state

    @property
    def failure_count(self) -> int:
        """Consecutive failures counted while closed (pybreaker's failure counter)."""
        return int(self._storage.counter)

    @property
    def retry_after(self) -> float:
        """Seconds until a refused call could be let through: until probes while open,
        infinite while isolated, else 0."""
        if self._state is ISOLATED:
            return math.inf
        if self._state is not OPEN:
            return 0.0
        return max(0.0, self._half_open_at - self._clock.monotonic())

    def allows_call(self) -> bool:
        """Whether a call made now would be let through (reserves nothing; cheap)."""
        state = self._state
        if state is CLOSED or self._metrics_only:
            return True
        if state is OPEN:
            return self._clock.monotonic() >= self._half_open_at
        if state is ISOLATED:
            return False
        return self._probes < self.options.half_open_max_calls

    def try_acquire(self) -> Permit | None:
        """A permit for one call, or None (counted as rejected) if the circuit refuses it."""
        state = self._state
        if state is CLOSED:
            if self._timed:
                return Permit(self, self._generation, False, self._clock.monotonic())
            return self._closed_permit
        if state is OPEN:
            now = self._clock.monotonic()
            if now < self._half_open_at:
                return self._refused(self._half_open_at - now)
            self._half_open()
        elif state is ISOLATED:
            return self._refused(math.inf)
        if self._probes >= self.options.half_open_max_calls:
            return self._refused(0.0)
        self._probes += 1
        return Permit(self, self._generation, True, self._clock.monotonic() if self._timed else 0)

    def acquire(self) -> Permit:
        """:meth:`try_acquire`, raising :class:`CircuitOpenError` instead of returning None."""
        permit = self._quiet_permit or self.try_acquire()
        if permit is None:
            raise CircuitOpenError(self.name, self._state, self._wait)
        return permit

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` through the circuit; raise :class:`CircuitOpenError`
        without calling ``fn`` when the circuit refuses the call."""
        # The hot paths, inlined (bench/bench_breaker.py, 50,000 calls x 5 rounds, before and
        # after): on success no context manager and no second coroutine (0.26 us over a bare
        # await, where `async with self.calling()` cost 0.75 us in the same run); a refusal
        # raised here, not in acquire() (one frame less to unwind), with the wait that
        # try_acquire() worked out instead of a second clock read (2.1 us to 0.95 us, with
        # CircuitOpenError's cheaper construction, see its docstring).
        permit = self._quiet_permit
        if permit is None:
            permit = self.try_acquire()
            if permit is None:
                raise CircuitOpenError(self.name, self._state, self._wait)
        try:
            awaitable = fn(*args, **kwargs)
        except BaseException:
            permit.released()  # the call could not be made: nothing about the dependency
            raise
        try:
            result = await awaitable
        except BaseException as error:
            self._raised(permit, error, awaitable)
            raise
        if permit is self._quiet_permit:
            self.stats.successes += 1
        else:
            permit.succeeded()
        return result

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """``@breaker`` on an async function: each call of it goes through :meth:`call`."""
        if not inspect.iscoroutinefunction(fn):
            raise ArgumentTypeError(
                f"CircuitBreaker({self.name!r}) decorates an async function, got {fn!r}"
            )
        call = self.call

        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            return await call(fn, *args, **kwargs)

        return guarded

    async def __aenter__(self) -> Permit:
        """``async with breaker: ...``: the block is one call (raises
        :class:`CircuitOpenError` on entry when refused). The permit is kept in a context
        variable of this breaker until the block ends, so blocks of one breaker nest, and
        concurrent tasks each keep their own."""
        permit = self._quiet_permit or self.acquire()
        self._held.set((permit, self._held.get()))
        return permit

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        held = self._held.get()
        if held is None:  # pragma: no cover - __aexit__ without __aenter__ in this context
            return
        permit, outer = held
        self._held.set(outer)
        if error is None:
            permit.succeeded()
        else:
            self._raised(permit, error, None)

    def calling(self) -> Calling:
        """``async with breaker.calling() as permit: ...``: the block is one call through the
        circuit (raises :class:`CircuitOpenError` on entry when refused)."""
        return Calling(self)

    def isolate(self, reason: str = "isolated by hand") -> None:
        """Force the circuit open: every call is refused (or, in metrics-only mode, counted as
        refused) until :meth:`reset`. Polly's manual isolation, Resilience4j's FORCED_OPEN."""
        self._transition(self._machine.open, reason, entering=ISOLATED)

    def reset(self, reason: str = "reset by hand") -> None:
        """Close the circuit and forget every count, whatever its state (isolated too)."""
        self._transition(self._machine.close, reason)

    # Outcomes (called by Permit) -------------------------------------------------------------

    def _refused(self, wait: float) -> Permit | None:
        """Count a refusal; ``wait`` is the ``retry_after`` of the error it becomes."""
        self.stats.rejected += 1
        self._wait = wait
        if self._metrics_only:
            return Permit(self, SHADOW, probe=False)
        return None

    def _raised(self, permit: Permit, error: BaseException, awaitable: object) -> None:
        """The call raised ``error``: a failure, unless it is no ``Exception`` (cancelled) or
        the caller's (``await`` of something that is not awaitable)."""
        if not isinstance(error, Exception) or (
            awaitable is not None and not inspect.isawaitable(awaitable)
        ):
            permit.released()
        else:
            permit.failed(error)

    def _on_success(self, permit: Permit) -> None:
        generation = permit._generation
        if generation != self._generation:
            if generation != SHADOW:
                self.stats.ignored += 1
            return
        self.stats.successes += 1
        if self._state is HALF_OPEN:
            self._storage.increment_success_counter()
            if self._storage.success_counter >= self._machine.success_threshold:
                self._transition(self._machine.close, "probe succeeded")
            return
        trip_state = self._measured(permit)
        if self.policy.on_success(trip_state):
            self._transition(
                self._machine.open,
                f"{self.policy!r} tripped on a success in {trip_state.duration:.3f}s",
            )
        else:
            self._update_quiet()

    def _on_failure(self, permit: Permit, error: BaseException) -> None:
        if self._excluded(error):
            self._on_success(permit)
            return
        generation = permit._generation
        if generation != self._generation:
            if generation != SHADOW:
                self.stats.ignored += 1
            return
        self.stats.failures += 1
        cause = type(error).__name__
        if self._state is HALF_OPEN:
            self._transition(self._machine.open, f"probe failed: {cause}")
        elif self.policy.on_failure(self._measured(permit)):
            self._transition(self._machine.open, f"{self.policy!r} tripped on {cause}")
        else:
            self._update_quiet()

    def _measured(self, permit: Permit) -> TripState:
        state = self._trip_state
        if self._timed:
            state.now = now = self._clock.monotonic()
            state.duration = now - permit.started
        return state

    def _excluded(self, error: BaseException) -> bool:
        """Whether ``options.exclude`` says ``error`` is no failure. A class excludes its
        instances (whatever its metaclass); a predicate that raises excludes nothing, and is
        logged: a bug in a predicate must not make the breaker raise or stop counting."""
        for exclusion in self.options.exclude:
            if isinstance(exclusion, type):
                if isinstance(error, exclusion):
                    return True
                continue
            try:
                if exclusion(error):
                    return True
            except Exception:
                _log.exception(
                    "breaker %r: exclude predicate %r raised on %r; counted as a failure",
                    self.name,
                    exclusion,
                    error,
                )
        return False

    def _update_quiet(self) -> None:
        """Mark the circuit quiet when it is: closed, default policy, failure count zero."""
        quiet = (
            self._state is CLOSED
            and self._success_only_resets
            and not self._timed
            and not self._storage.counter
        )
        self._quiet_permit = self._closed_permit if quiet else None

    def _free_probe_slot(self, generation: int) -> None:
        if generation == self._generation:
            self._probes -= 1

    # Transitions -----------------------------------------------------------------------------

    def _half_open(self) -> None:
        self._transition(self._machine.half_open, "reset timeout elapsed")

    def _transition(
        self, step: Callable[[], object], reason: str, entering: BreakerState | None = None
    ) -> None:
        """Run one pybreaker transition; :class:`_Transitions` sees it and updates us
        (``entering`` names a state of ours pybreaker does not have: isolated is its open)."""
        self._reason = reason
        self._entering = entering
        step()

    def _follow(self, state: BreakerState, reason: str, open_for: float) -> None:
        """Take a transition another process published (see ``_sync.py``), without
        publishing it again. An open circuit lets probes through ``open_for`` seconds from
        now, as the publisher's does."""
        if state is self._state:  # already there: only an open circuit's timer moves
            if state is OPEN:
                self._half_open_at = self._clock.monotonic() + open_for
            return
        steps = {OPEN: self._machine.open, ISOLATED: self._machine.open}
        self._following = True
        try:
            self._transition(
                steps.get(state, self._machine.close),
                f"followed: {reason}",
                entering=ISOLATED if state is ISOLATED else None,
            )
        finally:
            self._following = False
        if state is OPEN:
            self._half_open_at = self._clock.monotonic() + open_for

    def _entered(self, state: BreakerState) -> None:
        """pybreaker moved the circuit to ``state``: start a new generation, tell the bus."""
        if self._entering is not None:
            state, self._entering = self._entering, None
        previous = self._state
        failures = self.failure_count
        self._state = state
        self._generation += 1
        self._trip_state.epoch += 1
        self._probes = 0
        if state is CLOSED:
            self._closed_permit = Permit(self, self._generation, probe=False)
        self._update_quiet()
        if state is OPEN:
            self.stats.trips += 1
            self._half_open_at = self._clock.monotonic() + self.options.reset_timeout
            self._emit(
                BreakerOpened(
                    self.name, previous.value, self._reason, failures, self.options.reset_timeout
                )
            )
        elif state is HALF_OPEN:
            self._emit(
                BreakerHalfOpened(
                    self.name, previous.value, self._reason, self.options.half_open_max_calls
                )
            )
        elif state is ISOLATED:
            self._emit(BreakerIsolated(self.name, previous.value, self._reason))
        else:
            self._emit(BreakerClosed(self.name, previous.value, self._reason))
        if self._sync is not None and not self._following and state is not HALF_OPEN:
            self._sync.publish(self, state, self._reason, self.retry_after)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self._state.value})"


class _Transitions(pybreaker.CircuitBreakerListener):
    """Forwards pybreaker's state changes to the :class:`CircuitBreaker` that owns it."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self._breaker._entered(BreakerState(new_state.name))
