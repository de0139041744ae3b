"""Every event a :class:`~resilient.failover.Failover` emits (source ``"failover"``).

``failed_over`` (an attempt failed and the request moved to the next provider), ``hedged`` (a
second attempt sent after the hedge delay), ``fallback`` (no provider answered: the fallback
did, marked degraded), ``recovering`` (a provider is available again and starts its slow
start). Each provider's breaker emits its own transitions (source ``"breaker"``), a shared
retry budget its own refusals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from resilient.events import EventAttributes, Severity

__all__ = [
    "FAILOVER_EVENT_SOURCE",
    "FAILOVER_FAILED_OVER",
    "FAILOVER_FALLBACK",
    "FAILOVER_HEDGED",
    "FAILOVER_RECOVERING",
    "FailedOver",
    "FallbackUsed",
    "Hedged",
    "ProviderRecovering",
]

FAILOVER_EVENT_SOURCE = "failover"
FAILOVER_FAILED_OVER = "failed_over"
FAILOVER_HEDGED = "hedged"
FAILOVER_FALLBACK = "fallback"
FAILOVER_RECOVERING = "recovering"


@dataclass(frozen=True, slots=True, eq=False)
class FailedOver(EventAttributes):
    """An attempt at ``failed`` ended with ``error``; the request went on to ``to``."""

    NAME: ClassVar[str] = FAILOVER_FAILED_OVER
    SEVERITY: ClassVar[Severity] = Severity.INFO

    failover: str
    failed: str
    to: str
    error: str


@dataclass(frozen=True, slots=True, eq=False)
class Hedged(EventAttributes):
    """``primary`` had not answered after ``delay`` seconds: a hedge went to ``hedge``."""

    NAME: ClassVar[str] = FAILOVER_HEDGED
    SEVERITY: ClassVar[Severity] = Severity.DEBUG

    failover: str
    primary: str
    hedge: str
    delay: float


@dataclass(frozen=True, slots=True, eq=False)
class FallbackUsed(EventAttributes):
    """No provider answered (``reason``): the fallback's degraded answer was given."""

    NAME: ClassVar[str] = FAILOVER_FALLBACK
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    failover: str
    reason: str


@dataclass(frozen=True, slots=True, eq=False)
class ProviderRecovering(EventAttributes):
    """``provider`` is available again: its share grows over ``window`` seconds."""

    NAME: ClassVar[str] = FAILOVER_RECOVERING
    SEVERITY: ClassVar[Severity] = Severity.INFO

    failover: str
    provider: str
    window: float
