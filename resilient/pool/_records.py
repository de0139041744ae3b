"""What a :class:`~resilient.pool.BoundedPool` keeps per connection, and what it counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Counters", "PoolStats", "Pooled"]

C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot of one :class:`BoundedPool`: its gauges now, and its counters since it was
    made."""

    open: int
    """Connections open (idle or in use)."""
    idle: int
    in_use: int
    connecting: int
    """Connections being opened (each holds a place within ``max_size``)."""
    waiting: int
    """Callers waiting for a connection."""
    connects: int
    """Connections opened."""
    connect_failures: int
    """Attempts that raised (the gate's refusals included)."""
    gated: int
    """Connects that were refused by the gate (:class:`~resilient.errors.ConnectRefusedError`)."""
    churned: int
    """Connections lost soon after their opening, as the gate judged them."""
    discarded: int
    """Connections closed because they raised in use or failed their check."""
    expired: int
    """Connections closed at the end of their lifetime, or retired by a rebuild."""
    idle_closed: int
    """Connections closed after ``idle_timeout``."""
    timeouts: int
    """Acquires that ended with :class:`~resilient.errors.PoolTimeoutError`."""
    exhausted: int
    """Acquires refused with :class:`~resilient.errors.PoolExhaustedError`."""


@dataclass(slots=True)
class Counters:
    connects: int = 0
    connect_failures: int = 0
    gated: int = 0
    churned: int = 0
    discarded: int = 0
    expired: int = 0
    idle_closed: int = 0
    timeouts: int = 0
    exhausted: int = 0


class Pooled(Generic[C]):
    """One open connection and its times."""

    __slots__ = ("connection", "expires_at", "generation", "last_used", "opened_at", "retire")

    def __init__(self, connection: C, opened_at: float, expires_at: float, generation: int):
        self.connection = connection
        self.opened_at = opened_at
        self.expires_at = expires_at
        self.last_used = opened_at
        self.generation = generation
        self.retire = False
        """Close it when it is given back (a rebuild chose it)."""
