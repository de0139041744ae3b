"""resilient: asyncio guards against the failure mechanisms behind the 2026 AI outages.

Layers (imports point down only):

    patterns      ratelimit, breaker, ...   (each knows clock and events, never an adapter)
    foundations   clock, events             (know no pattern)

``resilient`` never imports ``chaos``.
"""

from resilient.breaker import BreakerOptions, BreakerState, CircuitBreaker, CircuitOpenError
from resilient.clock import SYSTEM_CLOCK, Clock, SystemClock, VirtualClock
from resilient.events import DEFAULT_EVENTS, Event, EventBus, EventRecorder, Severity
from resilient.ratelimit import (
    Decision,
    DecisionSource,
    FailOpenGuard,
    GuardMode,
    GuardOptions,
    LimiterUnavailable,
    LocalLimiter,
    Rate,
    RedisLimiter,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_EVENTS",
    "SYSTEM_CLOCK",
    "BreakerOptions",
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpenError",
    "Clock",
    "Decision",
    "DecisionSource",
    "Event",
    "EventBus",
    "EventRecorder",
    "FailOpenGuard",
    "GuardMode",
    "GuardOptions",
    "LimiterUnavailable",
    "LocalLimiter",
    "Rate",
    "RedisLimiter",
    "Severity",
    "SystemClock",
    "VirtualClock",
    "__version__",
]
