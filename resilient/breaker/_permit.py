"""Where a circuit is (:class:`BreakerState`), what it counted (:class:`BreakerStats`), and the
right to make one call through it (:class:`Permit`, and :class:`Calling`, the block of
``async with breaker.calling()``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

import pybreaker

if TYPE_CHECKING:
    from resilient.breaker._breaker import CircuitBreaker

__all__ = ["BreakerState", "BreakerStats", "Calling", "Permit"]


class BreakerState(enum.Enum):
    """Where a circuit is. The first three values are pybreaker's state names; ``isolated``
    is the open state :meth:`~resilient.breaker.CircuitBreaker.isolate` forces (pybreaker's
    open, with no reset timeout)."""

    CLOSED = pybreaker.STATE_CLOSED
    OPEN = pybreaker.STATE_OPEN
    HALF_OPEN = pybreaker.STATE_HALF_OPEN
    ISOLATED = "isolated"


# Enum members read through the class cost a descriptor call; the hot path reads these.
CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN
ISOLATED = BreakerState.ISOLATED

SHADOW = -1
"""The generation of a permit metrics-only mode gives a call it would have refused: no
generation is ever -1, so its outcome counts nowhere (the refusal was counted)."""


@dataclass(slots=True)
class BreakerStats:
    """Counters of one :class:`~resilient.breaker.CircuitBreaker` since it was made."""

    successes: int = 0
    """Calls that counted as successes (excluded exceptions included)."""
    failures: int = 0
    """Calls that counted as failures."""
    rejected: int = 0
    """Calls refused because the circuit was open or isolated, or every probe slot was taken
    (in metrics-only mode: calls it would have refused, and let through)."""
    cancelled: int = 0
    """Calls that ended without an outcome (cancelled, or not made): counted as neither."""
    ignored: int = 0
    """Outcomes of calls that started before the last transition (not counted)."""
    trips: int = 0
    """Times the circuit opened."""


class Permit:
    """The right to make one call through a :class:`~resilient.breaker.CircuitBreaker`;
    report how it ended.

    Call exactly one of :meth:`succeeded`, :meth:`failed` or :meth:`released` (cancelled: no
    outcome). A probe permit holds a half-open slot until then. ``started`` is the breaker's
    clock when the permit was given (0 unless its policy is timed).
    """

    __slots__ = ("_breaker", "_generation", "_pending", "probe", "started")

    def __init__(
        self, breaker: CircuitBreaker, generation: int, probe: bool, started: float = 0.0
    ) -> None:
        self._breaker = breaker
        self._generation = generation
        self._pending = True
        self.probe = probe
        """True for a half-open probe (it holds one of the ``half_open_max_calls`` slots)."""
        self.started = started

    def succeeded(self) -> None:
        """The call succeeded."""
        breaker = self._breaker
        if self is breaker._quiet_permit:
            # Closed, default policy, failure count zero: nothing to reset, nothing to close.
            breaker.stats.successes += 1
        elif self._settle():
            breaker._on_success(self)

    def failed(self, error: BaseException) -> None:
        """The call failed with ``error`` (an excluded error counts as a success)."""
        if self._settle():
            self._breaker._on_failure(self, error)

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


class Calling:
    """``async with breaker.calling() as permit``: one call through the circuit, whose permit
    this object holds (no context variable, no generator)."""

    __slots__ = ("_breaker", "_permit")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._permit: Permit | None = None

    async def __aenter__(self) -> Permit:
        self._permit = permit = self._breaker.acquire()
        return permit

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        permit = self._permit
        if permit is None:  # pragma: no cover - __aexit__ without __aenter__
            return
        self._permit = None
        if error is None:
            permit.succeeded()
        else:
            self._breaker._raised(permit, error, None)
