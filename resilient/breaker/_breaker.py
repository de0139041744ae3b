"""An asyncio circuit breaker on pybreaker's state machine and storage.

pybreaker keeps the state of a circuit (closed, open, half-open), its counters and its
transitions, in a storage that can be shared (memory now; Redis later), but it runs a guarded
call *inside* a threading lock and handles coroutines only through tornado. This module keeps
pybreaker for what it does soundly and does the call itself:

- every transition goes through pybreaker (``open()``, ``half_open()``, ``close()``, its
  storage counters and its ``state_change`` listeners), each a short synchronous step: no
  lock is ever held across an ``await``;
- time comes from the injected :class:`~resilient.clock.Clock`: the circuit turns half-open
  ``reset_timeout`` seconds after it opened *on that clock* (pybreaker's wall-clock
  ``opened_at`` is never read), so tests run in virtual time;
- half-open admits at most ``half_open_max_calls`` concurrent probes; other callers are
  rejected at once with :class:`CircuitOpenError`. One probe success closes the circuit, one
  probe failure opens it again;
- when to trip is a :class:`TripPolicy`, the seam later patterns extend (failure-rate windows,
  slow calls). The default, :class:`ConsecutiveFailures`, trips after
  ``failure_threshold`` failures in a row;
- every transition emits a typed event (source ``"breaker"``, see ``_events.py``):
  ``opened``, ``half_opened``, ``closed``, with the breaker's name and the reason.

A success while the circuit is closed and nothing counts against it (the default policy, no
failure since the last success) changes nothing but :attr:`BreakerStats.successes`; the
breaker knows when it is in that *quiet* state and counts such a success without touching
pybreaker's storage, whose failure count is zero then anyway. Any other outcome takes the
full path through the policy and pybreaker.

Outcomes are counted per *permit*. A call that started before a transition (say, while closed)
and ends after it is ignored: it says nothing about the circuit as it is now. A call cancelled
before it ended (``asyncio.CancelledError``, or any ``BaseException`` that is not an
``Exception``) counts as neither success nor failure, and a cancelled probe frees its slot:
cancellation says nothing about the dependency. An exception listed in ``exclude`` counts as a
success (pybreaker's rule: the dependency answered; the answer was a business error).

Use one breaker from one event loop.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import pybreaker

from resilient._validate import Instance, Text, check
from resilient.breaker._events import (
    BREAKER_EVENT_SOURCE,
    BreakerClosed,
    BreakerHalfOpened,
    BreakerOpened,
)
from resilient.breaker._options import DEFAULT_BREAKER_OPTIONS, BreakerOptions
from resilient.breaker._policy import ConsecutiveFailures, TripPolicy, TripState
from resilient.clock import SYSTEM_CLOCK, Clock
from resilient.errors import CircuitOpenError
from resilient.events import DEFAULT_EVENTS, Emitter, EventBus

__all__ = ["BreakerState", "BreakerStats", "CircuitBreaker", "Permit"]

_log = logging.getLogger("resilient.breaker")

P = ParamSpec("P")
T = TypeVar("T")


class BreakerState(enum.Enum):
    """Where a circuit is. The values are pybreaker's state names."""

    CLOSED = pybreaker.STATE_CLOSED
    OPEN = pybreaker.STATE_OPEN
    HALF_OPEN = pybreaker.STATE_HALF_OPEN


# Enum members read through the class cost a descriptor call; the hot path reads these.
_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN


@dataclass(slots=True)
class BreakerStats:
    """Counters of one :class:`CircuitBreaker` since it was made."""

    successes: int = 0
    """Calls that counted as successes (excluded exceptions included)."""
    failures: int = 0
    """Calls that counted as failures."""
    rejected: int = 0
    """Calls refused because the circuit was open or every probe slot was taken."""
    cancelled: int = 0
    """Calls that ended without an outcome (cancelled): counted as neither."""
    ignored: int = 0
    """Outcomes of calls that started before the last transition (not counted)."""
    trips: int = 0
    """Times the circuit opened."""


class Permit:
    """The right to make one call through a :class:`CircuitBreaker`; report how it ended.

    Call exactly one of :meth:`succeeded`, :meth:`failed` or :meth:`released` (cancelled: no
    outcome). A probe permit holds a half-open slot until then.
    """

    __slots__ = ("_breaker", "_generation", "_pending", "probe")

    def __init__(self, breaker: CircuitBreaker, generation: int, probe: bool) -> None:
        self._breaker = breaker
        self._generation = generation
        self._pending = True
        self.probe = probe
        """True for a half-open probe (it holds one of the ``half_open_max_calls`` slots)."""

    def succeeded(self) -> None:
        """The call succeeded."""
        breaker = self._breaker
        if self is breaker._quiet_permit:
            # Closed, default policy, failure count zero: nothing to reset, nothing to close.
            breaker.stats.successes += 1
        elif not self.probe or self._settle():
            breaker._on_success(self._generation)

    def failed(self, error: BaseException) -> None:
        """The call failed with ``error`` (an excluded error counts as a success)."""
        if self._settle():
            self._breaker._on_failure(self._generation, error)

    def released(self) -> None:
        """The call ended without an outcome (e.g. cancelled): neither success nor failure."""
        if self._settle():
            self._breaker.stats.cancelled += 1

    def _settle(self) -> bool:
        """Mark this permit used (once: a probe frees its slot); False if already used."""
        if not self.probe:
            return True  # the shared permit of a closed circuit holds no slot
        if not self._pending:
            return False
        self._pending = False
        self._breaker._free_probe_slot(self._generation)
        return True


class CircuitBreaker:
    """A circuit breaker for coroutines, on pybreaker's state machine (see the module doc).

    ``await breaker.call(fn, *args)`` or ``async with breaker.calling(): ...`` run one call;
    :meth:`try_acquire` / :meth:`acquire` give a :class:`Permit` for callers that report the
    outcome themselves (the cheapest path). ``policy`` decides when to trip (default
    :class:`ConsecutiveFailures` of ``options.failure_threshold``).
    """

    def __init__(
        self,
        name: str,
        options: BreakerOptions = DEFAULT_BREAKER_OPTIONS,
        *,
        policy: TripPolicy | None = None,
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
        self._state: BreakerState = _CLOSED
        self._generation = 0
        self._closed_permit = Permit(self, 0, probe=False)
        self._probes = 0
        self._half_open_at = 0.0
        self._reason = ""
        # A success of the default policy only ever resets the failure count (a custom policy
        # may count successes: it is always told). The storage is this breaker's own, so the
        # count cannot change behind its back; a shared storage must not take the shortcut.
        self._success_only_resets = type(self.policy) is ConsecutiveFailures
        # The shared permit of the closed circuit while it is quiet (see the module doc), else
        # None: while a permit is the quiet one, its success only counts in the stats.
        self._quiet_permit: Permit | None = None
        self._update_quiet()

    @property
    def state(self) -> BreakerState:
        """The circuit's state now (an open circuit whose reset timeout has passed turns
        half-open when read)."""
        if self._state is _OPEN and self._clock.monotonic() >= self._half_open_at:
            self._half_open()
        return self._state

    @property
    def failure_count(self) -> int:
        """Consecutive failures counted while closed (pybreaker's failure counter)."""
        return int(self._storage.counter)

    @property
    def retry_after(self) -> float:
        """Seconds until an open circuit lets probes through (0 when not open)."""
        if self._state is not _OPEN:
            return 0.0
        return max(0.0, self._half_open_at - self._clock.monotonic())

    def allows_call(self) -> bool:
        """Whether a call made now would be let through (reserves nothing; cheap)."""
        state = self._state
        if state is _CLOSED:
            return True
        if state is _OPEN:
            return self._clock.monotonic() >= self._half_open_at
        return self._probes < self.options.half_open_max_calls

    def try_acquire(self) -> Permit | None:
        """A permit for one call, or None (counted as rejected) if the circuit refuses it."""
        state = self._state
        if state is _CLOSED:
            return self._closed_permit
        if state is _OPEN:
            if self._clock.monotonic() < self._half_open_at:
                self.stats.rejected += 1
                return None
            self._half_open()
        if self._probes >= self.options.half_open_max_calls:
            self.stats.rejected += 1
            return None
        self._probes += 1
        return Permit(self, self._generation, probe=True)

    def acquire(self) -> Permit:
        """:meth:`try_acquire`, raising :class:`CircuitOpenError` instead of returning None."""
        permit = self.try_acquire()
        if permit is None:
            raise CircuitOpenError(self.name, self._state, self.retry_after)
        return permit

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` through the circuit; raise :class:`CircuitOpenError`
        without calling ``fn`` when the circuit refuses the call."""
        async with self.calling():
            return await fn(*args, **kwargs)

    @contextlib.asynccontextmanager
    async def calling(self) -> AsyncIterator[Permit]:
        """``async with breaker.calling(): ...``: the block is one call through the circuit
        (raises :class:`CircuitOpenError` on entry when refused)."""
        permit = self.acquire()
        try:
            yield permit
        except Exception as error:
            permit.failed(error)
            raise
        except BaseException:
            permit.released()
            raise
        permit.succeeded()

    # Outcomes (called by Permit) -------------------------------------------------------------

    def _on_success(self, generation: int) -> None:
        if generation != self._generation:
            self.stats.ignored += 1
            return
        self.stats.successes += 1
        if self._state is _HALF_OPEN:
            self._storage.increment_success_counter()
            if self._storage.success_counter >= self._machine.success_threshold:
                self._transition(self._machine.close, "probe succeeded")
        else:
            self.policy.on_success(self._trip_state)
            self._update_quiet()

    def _on_failure(self, generation: int, error: BaseException) -> None:
        if self._excluded(error):
            self._on_success(generation)
            return
        if generation != self._generation:
            self.stats.ignored += 1
            return
        self.stats.failures += 1
        cause = type(error).__name__
        if self._state is _HALF_OPEN:
            self._transition(self._machine.open, f"probe failed: {cause}")
        elif self.policy.on_failure(self._trip_state):
            self._transition(self._machine.open, f"{self.policy!r} tripped on {cause}")
        else:
            self._update_quiet()

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
        quiet = self._state is _CLOSED and self._success_only_resets and not self._storage.counter
        self._quiet_permit = self._closed_permit if quiet else None

    def _free_probe_slot(self, generation: int) -> None:
        if generation == self._generation:
            self._probes -= 1

    # Transitions -----------------------------------------------------------------------------

    def _half_open(self) -> None:
        self._transition(self._machine.half_open, "reset timeout elapsed")

    def _transition(self, step: Callable[[], object], reason: str) -> None:
        """Run one pybreaker transition; :class:`_Transitions` sees it and updates us."""
        self._reason = reason
        step()

    def _entered(self, state: BreakerState, previous: BreakerState) -> None:
        """pybreaker moved the circuit to ``state``: start a new generation, tell the bus."""
        failures = self.failure_count
        self._state = state
        self._generation += 1
        self._probes = 0
        if state is _CLOSED:
            self._closed_permit = Permit(self, self._generation, probe=False)
        self._update_quiet()
        if state is _OPEN:
            self.stats.trips += 1
            self._half_open_at = self._clock.monotonic() + self.options.reset_timeout
            self._emit(
                BreakerOpened(
                    self.name,
                    previous.value,
                    self._reason,
                    failures,
                    self.options.reset_timeout,
                )
            )
        elif state is _HALF_OPEN:
            self._emit(
                BreakerHalfOpened(
                    self.name, previous.value, self._reason, self.options.half_open_max_calls
                )
            )
        else:
            self._emit(BreakerClosed(self.name, previous.value, self._reason))

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
        previous = BreakerState(old_state.name) if old_state is not None else _CLOSED
        self._breaker._entered(BreakerState(new_state.name), previous)
