"""Every event a :class:`~resilient.breaker.CircuitBreaker` emits (source ``"breaker"``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from resilient.events import EventAttributes, Severity

__all__ = [
    "BREAKER_CLOSED",
    "BREAKER_EVENT_SOURCE",
    "BREAKER_HALF_OPENED",
    "BREAKER_OPENED",
    "BreakerClosed",
    "BreakerHalfOpened",
    "BreakerOpened",
]

BREAKER_EVENT_SOURCE = "breaker"
"""The ``source`` of every breaker event."""

BREAKER_OPENED = "opened"
BREAKER_HALF_OPENED = "half_opened"
BREAKER_CLOSED = "closed"


@dataclass(frozen=True, slots=True, eq=False)
class BreakerOpened(EventAttributes):
    """The circuit opened: calls are refused until ``reset_timeout`` passes (WARNING)."""

    NAME: ClassVar[str] = BREAKER_OPENED
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    breaker: str
    """The breaker's name."""
    previous: str
    """The state it left (``closed`` or ``half-open``)."""
    reason: str
    """Why, e.g. ``ConsecutiveFailures(5) tripped on ConnectionError`` or ``probe failed: X``."""
    failures: int
    """Consecutive failures counted when it opened."""
    reset_timeout: float
    """Seconds until it lets probes through."""


@dataclass(frozen=True, slots=True, eq=False)
class BreakerHalfOpened(EventAttributes):
    """The reset timeout passed: up to ``max_probes`` calls go through as probes (INFO)."""

    NAME: ClassVar[str] = BREAKER_HALF_OPENED

    breaker: str
    previous: str
    reason: str
    max_probes: int
    """Probes allowed at once (``half_open_max_calls``)."""


@dataclass(frozen=True, slots=True, eq=False)
class BreakerClosed(EventAttributes):
    """A probe succeeded: calls flow again (INFO)."""

    NAME: ClassVar[str] = BREAKER_CLOSED

    breaker: str
    previous: str
    reason: str
