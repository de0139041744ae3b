"""Every event a :class:`~resilient.breaker.CircuitBreaker` emits (source ``"breaker"``).

The transitions: ``opened``, ``half_opened``, ``closed``, ``isolated`` (each with the reason; a
transition followed from another process through a :class:`~resilient.breaker.BreakerSync`
says so in its reason). Sharing: ``sync_lost`` (Redis cannot be reached: the breaker decides
locally) and ``sync_restored``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from resilient.events import EventAttributes, Severity

__all__ = [
    "BREAKER_CLOSED",
    "BREAKER_EVENT_SOURCE",
    "BREAKER_HALF_OPENED",
    "BREAKER_ISOLATED",
    "BREAKER_OPENED",
    "BREAKER_SYNC_LOST",
    "BREAKER_SYNC_RESTORED",
    "BreakerClosed",
    "BreakerHalfOpened",
    "BreakerIsolated",
    "BreakerOpened",
    "BreakerSyncLost",
    "BreakerSyncRestored",
]

BREAKER_EVENT_SOURCE = "breaker"
"""The ``source`` of every breaker event."""

BREAKER_OPENED = "opened"
BREAKER_HALF_OPENED = "half_opened"
BREAKER_CLOSED = "closed"
BREAKER_ISOLATED = "isolated"
BREAKER_SYNC_LOST = "sync_lost"
BREAKER_SYNC_RESTORED = "sync_restored"


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
    """Consecutive failures counted when it opened (pybreaker's counter; 0 under a policy that
    counts no run of failures, such as :class:`~resilient.breaker.FailureRate`)."""
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


@dataclass(frozen=True, slots=True, eq=False)
class BreakerIsolated(EventAttributes):
    """``isolate()`` forced the circuit open: every call is refused until ``reset()``
    (WARNING)."""

    NAME: ClassVar[str] = BREAKER_ISOLATED
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    breaker: str
    previous: str
    reason: str


@dataclass(frozen=True, slots=True, eq=False)
class BreakerSyncLost(EventAttributes):
    """Redis could not be reached: this breaker decides locally, and its transitions are
    published once Redis answers again (WARNING)."""

    NAME: ClassVar[str] = BREAKER_SYNC_LOST
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    breaker: str
    error: str
    """What Redis did (``ConnectionError: ...``, ``TimeoutError``)."""


@dataclass(frozen=True, slots=True, eq=False)
class BreakerSyncRestored(EventAttributes):
    """Redis answers again: this breaker shares its transitions and follows the others' (INFO)."""

    NAME: ClassVar[str] = BREAKER_SYNC_RESTORED

    breaker: str
    down_for: float
    """Seconds Redis could not be reached, on the breaker's clock."""
