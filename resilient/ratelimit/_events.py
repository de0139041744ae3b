"""Every event the rate limiters and the fail-open guard emit, by source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from resilient.events import EventAttributes, Severity

__all__ = [
    "GUARD_DEGRADED",
    "GUARD_EVENT_SOURCE",
    "GUARD_RECOVERED",
    "GUARD_SUSPECTED_LIMITER_FAULT",
    "LOCAL_EVENT_SOURCE",
    "LOCAL_OVERFLOW",
    "REDIS_CLIENT_UNSUPPORTED",
    "REDIS_EVENT_SOURCE",
    "REDIS_ROUND_TRIP_FAILED",
    "REDIS_SCRIPT_RELOADED",
    "GuardDegraded",
    "GuardRecovered",
    "LocalLimiterOverflow",
    "RedisClientUnsupported",
    "RedisRoundTripFailed",
    "RedisScriptReloaded",
    "SuspectedLimiterFault",
]

LOCAL_EVENT_SOURCE = "ratelimit.local"
REDIS_EVENT_SOURCE = "ratelimit.redis"
GUARD_EVENT_SOURCE = "ratelimit.guard"

LOCAL_OVERFLOW = "overflow"
REDIS_ROUND_TRIP_FAILED = "round_trip_failed"
REDIS_CLIENT_UNSUPPORTED = "client_unsupported"
REDIS_SCRIPT_RELOADED = "script_reloaded"
GUARD_DEGRADED = "degraded"
GUARD_RECOVERED = "recovered"
GUARD_SUSPECTED_LIMITER_FAULT = "suspected_limiter_fault"


@dataclass(frozen=True, slots=True, eq=False)
class LocalLimiterOverflow(EventAttributes):
    """A :class:`~resilient.ratelimit.LocalLimiter` is full of live keys: new keys share one
    overflow allowance until room frees up (WARNING; once per overflow)."""

    NAME: ClassVar[str] = LOCAL_OVERFLOW
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    max_keys: int
    live_keys: int


@dataclass(frozen=True, slots=True, eq=False)
class RedisRoundTripFailed(EventAttributes):
    """A pipelined round trip to Redis failed; every decision in it raised (WARNING)."""

    NAME: ClassVar[str] = REDIS_ROUND_TRIP_FAILED
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    reason: str
    decisions: int
    """Decisions the round trip carried."""


@dataclass(frozen=True, slots=True, eq=False)
class RedisClientUnsupported(EventAttributes):
    """The installed redis-py is not one the limiter can use: every decision raises
    :class:`~resilient.errors.ConfigurationError` until the deployment is fixed (ERROR)."""

    NAME: ClassVar[str] = REDIS_CLIENT_UNSUPPORTED
    SEVERITY: ClassVar[Severity] = Severity.ERROR

    reason: str


@dataclass(frozen=True, slots=True, eq=False)
class RedisScriptReloaded(EventAttributes):
    """Redis had lost the script (a restart, ``SCRIPT FLUSH``): it was loaded again (INFO)."""

    NAME: ClassVar[str] = REDIS_SCRIPT_RELOADED

    reason: str


@dataclass(frozen=True, slots=True, eq=False)
class GuardDegraded(EventAttributes):
    """The guard started answering without its primary (WARNING)."""

    NAME: ClassVar[str] = GUARD_DEGRADED
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    reason: str
    """Why, e.g. ``primary timeout`` or ``breaker open``."""
    mode: str
    """Who answers meanwhile: the :class:`~resilient.ratelimit.GuardMode` value."""


@dataclass(frozen=True, slots=True, eq=False)
class GuardRecovered(EventAttributes):
    """The primary answered again (INFO)."""

    NAME: ClassVar[str] = GUARD_RECOVERED

    degraded_for: float
    """Seconds since the guard degraded."""


@dataclass(frozen=True, slots=True, eq=False)
class SuspectedLimiterFault(EventAttributes):
    """The primary denied many distinct keys within a short window: a broken limiter looks like
    that (WARNING). The event changes no decision."""

    NAME: ClassVar[str] = GUARD_SUSPECTED_LIMITER_FAULT
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    distinct_keys_denied: int
    window: float
