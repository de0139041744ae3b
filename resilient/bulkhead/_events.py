"""Every event a :class:`~resilient.bulkhead.Bulkhead` (source ``"bulkhead"``) and an
:class:`~resilient.bulkhead.AdaptiveThrottle` (source ``"bulkhead.throttle"``) emit.

The bulkhead: ``shed`` (a caller refused, with the reason: ``full``, ``deadline`` or
``throttled``) and ``limit_changed`` (its limit answered a new value after a sample). The
throttle: ``throttling`` (it began rejecting requests locally) and ``unthrottled`` (it stopped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from resilient.events import EventAttributes, Severity

__all__ = [
    "BULKHEAD_EVENT_SOURCE",
    "BULKHEAD_LIMIT_CHANGED",
    "BULKHEAD_SHED",
    "SHED_DEADLINE",
    "SHED_FULL",
    "SHED_THROTTLED",
    "THROTTLE_EVENT_SOURCE",
    "THROTTLE_STARTED",
    "THROTTLE_STOPPED",
    "CallShed",
    "LimitChanged",
    "ThrottleStarted",
    "ThrottleStopped",
]

BULKHEAD_EVENT_SOURCE = "bulkhead"
"""The ``source`` of every bulkhead event."""
THROTTLE_EVENT_SOURCE = "bulkhead.throttle"
"""The ``source`` of every adaptive throttle event."""

BULKHEAD_SHED = "shed"
BULKHEAD_LIMIT_CHANGED = "limit_changed"
THROTTLE_STARTED = "throttling"
THROTTLE_STOPPED = "unthrottled"

SHED_FULL = "full"
"""Shed at once: every permit taken and ``max_waiting`` callers waiting."""
SHED_DEADLINE = "deadline"
"""Shed at its deadline: no permit within ``max_wait``."""
SHED_THROTTLED = "throttled"
"""Shed at once: the bulkhead's throttle rejected it locally."""


@dataclass(frozen=True, slots=True, eq=False)
class CallShed(EventAttributes):
    """A caller was refused (a :class:`~resilient.errors.LoadShedError`): the call was not
    made. INFO, not WARNING: under overload a bulkhead sheds thousands a second, and shedding
    is it working (the fall of the limit, ``limit_changed``, and the stats say how much)."""

    NAME: ClassVar[str] = BULKHEAD_SHED
    SEVERITY: ClassVar[Severity] = Severity.INFO

    bulkhead: str
    reason: str
    """:data:`SHED_FULL`, :data:`SHED_DEADLINE` or :data:`SHED_THROTTLED`."""
    in_flight: int
    waiting: int
    limit: int


@dataclass(frozen=True, slots=True, eq=False)
class LimitChanged(EventAttributes):
    """The bulkhead's limit answered a new value after a call ended."""

    NAME: ClassVar[str] = BULKHEAD_LIMIT_CHANGED
    SEVERITY: ClassVar[Severity] = Severity.INFO

    bulkhead: str
    previous: int
    limit: int
    latency: float
    """Seconds the call that changed it took, from its admission."""
    dropped: bool
    """Whether that call failed with a fault of the dependency."""


@dataclass(frozen=True, slots=True, eq=False)
class ThrottleStarted(EventAttributes):
    """The throttle began rejecting requests locally: more than ``k`` requests per accepted
    one over its window."""

    NAME: ClassVar[str] = THROTTLE_STARTED
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    throttle: str
    probability: float
    """The probability a request is rejected now."""
    requests: int
    accepts: int


@dataclass(frozen=True, slots=True, eq=False)
class ThrottleStopped(EventAttributes):
    """The throttle stopped rejecting: its window holds at most ``k`` requests per accepted
    one again."""

    NAME: ClassVar[str] = THROTTLE_STOPPED
    SEVERITY: ClassVar[Severity] = Severity.INFO

    throttle: str
    requests: int
    accepts: int
