"""When a closed circuit trips: a :class:`TripPolicy` over the breaker's :class:`TripState`."""

from __future__ import annotations

from typing import Protocol

import pybreaker

from resilient._validate import Integer, check

__all__ = ["ConsecutiveFailures", "TripPolicy", "TripState"]


class TripState:
    """What a :class:`TripPolicy` reads and updates: the failures counted while closed.

    The count lives in the breaker's storage (so a shared storage shares it) and is reset
    when the circuit closes. A policy sees only this object, never the storage itself.
    """

    __slots__ = ("_storage",)

    def __init__(self, storage: pybreaker.CircuitBreakerStorage) -> None:
        self._storage = storage

    @property
    def failures(self) -> int:
        """Failures counted since the count was last reset."""
        return int(self._storage.counter)

    def add_failure(self) -> int:
        """Count one more failure; the new count."""
        self._storage.increment_counter()
        return int(self._storage.counter)

    def reset_failures(self) -> None:
        """Forget the failures counted so far."""
        self._storage.reset_counter()


class TripPolicy(Protocol):
    """Decides, from the outcomes of calls made while the circuit is closed, when it trips.

    A policy that needs time (a failure-rate window, slow calls) takes the breaker's clock
    when it is made.
    """

    def on_success(self, state: TripState) -> None:
        """A call made while closed succeeded (the hot path: keep it cheap)."""
        ...

    def on_failure(self, state: TripState) -> bool:
        """A call made while closed failed; True to open the circuit."""
        ...


class ConsecutiveFailures:
    """Trip after ``threshold`` failures in a row.

    A :class:`~resilient.breaker.CircuitBreaker` skips :meth:`on_success` of this exact class
    while the count is zero: it would change nothing.
    """

    def __init__(self, threshold: int) -> None:
        self.threshold = check("ConsecutiveFailures.threshold", threshold, Integer(min=1))

    def on_success(self, state: TripState) -> None:
        if state.failures:
            state.reset_failures()

    def on_failure(self, state: TripState) -> bool:
        return state.add_failure() >= self.threshold

    def __repr__(self) -> str:
        return f"ConsecutiveFailures({self.threshold})"
