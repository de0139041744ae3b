"""resilient: asyncio guards against the failure mechanisms behind the 2026 AI outages.

Layers (imports point down only):

    adapters      aiohttp                   (know patterns; no pattern knows them)
    patterns      ratelimit, breaker, release  (each knows the foundations, never an adapter)
    foundations   clock, events, errors     (know no pattern)

Every pattern has the same parts: its options (a frozen dataclass, every default named, and
a ``DEFAULT_<PATTERN>_OPTIONS``), the pattern ``Pattern(dependency, options, *,
collaborators..., clock, events)``, its events (one typed attributes class each), its stats,
and its errors in :mod:`resilient.errors`.

``import resilient`` imports nothing but itself: every public name is imported when first
used, and names whose module needs redis-py or pybreaker (``RedisLimiter``, ``FailOpenGuard``,
``CircuitBreaker``) only then bring those in. ``resilient`` never imports ``chaos``.
"""

from typing import TYPE_CHECKING

from resilient._lazy import lazy_exports

if TYPE_CHECKING:
    from resilient.breaker import (
        DEFAULT_BREAKER_OPTIONS,
        BreakerOptions,
        BreakerState,
        BreakerStats,
        CircuitBreaker,
    )
    from resilient.clock import SYSTEM_CLOCK, Clock, SystemClock, VirtualClock
    from resilient.errors import (
        ArgumentError,
        ArgumentTypeError,
        ArgumentValueError,
        CircuitOpenError,
        ConfigurationError,
        LimiterUnavailable,
        QueueClosedError,
        RedisLimiterUnavailable,
        ResilientError,
    )
    from resilient.events import (
        DEFAULT_EVENTS,
        Event,
        EventAttributes,
        EventBus,
        EventRecorder,
        Severity,
    )
    from resilient.ratelimit import (
        DEFAULT_GUARD_OPTIONS,
        DEFAULT_LOCAL_LIMITER_OPTIONS,
        DEFAULT_REDIS_LIMITER_OPTIONS,
        GUARD_BREAKER_OPTIONS,
        Decision,
        DecisionSource,
        FailOpenGuard,
        GuardMode,
        GuardOptions,
        GuardStats,
        Limiter,
        LocalLimiter,
        LocalLimiterOptions,
        LocalLimiterStats,
        Rate,
        RedisLimiter,
        RedisLimiterOptions,
        RedisLimiterStats,
    )
    from resilient.release import (
        DEFAULT_RELEASE_OPTIONS,
        Brake,
        Done,
        Drop,
        Dropped,
        Failed,
        Outcome,
        Proceed,
        ReleaseOptions,
        ReleaseQueue,
        ReleaseState,
        ReleaseStats,
        Replan,
        Superseded,
        Ticket,
    )

__version__ = "0.1.0"

# Every name is imported on first use: a program pays only for what it touches.
__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "resilient.breaker": [
            "DEFAULT_BREAKER_OPTIONS",
            "BreakerOptions",
            "BreakerState",
            "BreakerStats",
            "CircuitBreaker",
        ],
        "resilient.clock": ["SYSTEM_CLOCK", "Clock", "SystemClock", "VirtualClock"],
        "resilient.errors": [
            "ArgumentError",
            "ArgumentTypeError",
            "ArgumentValueError",
            "CircuitOpenError",
            "ConfigurationError",
            "LimiterUnavailable",
            "QueueClosedError",
            "RedisLimiterUnavailable",
            "ResilientError",
        ],
        "resilient.events": [
            "DEFAULT_EVENTS",
            "Event",
            "EventAttributes",
            "EventBus",
            "EventRecorder",
            "Severity",
        ],
        "resilient.ratelimit": [
            "DEFAULT_GUARD_OPTIONS",
            "DEFAULT_LOCAL_LIMITER_OPTIONS",
            "DEFAULT_REDIS_LIMITER_OPTIONS",
            "GUARD_BREAKER_OPTIONS",
            "Decision",
            "DecisionSource",
            "FailOpenGuard",
            "GuardMode",
            "GuardOptions",
            "GuardStats",
            "Limiter",
            "LocalLimiter",
            "LocalLimiterOptions",
            "LocalLimiterStats",
            "Rate",
            "RedisLimiter",
            "RedisLimiterOptions",
            "RedisLimiterStats",
        ],
        "resilient.release": [
            "DEFAULT_RELEASE_OPTIONS",
            "Brake",
            "Done",
            "Drop",
            "Dropped",
            "Failed",
            "Outcome",
            "Proceed",
            "ReleaseOptions",
            "ReleaseQueue",
            "ReleaseState",
            "ReleaseStats",
            "Replan",
            "Superseded",
            "Ticket",
        ],
    },
)

__all__ = [
    "DEFAULT_BREAKER_OPTIONS",
    "DEFAULT_EVENTS",
    "DEFAULT_GUARD_OPTIONS",
    "DEFAULT_LOCAL_LIMITER_OPTIONS",
    "DEFAULT_REDIS_LIMITER_OPTIONS",
    "DEFAULT_RELEASE_OPTIONS",
    "GUARD_BREAKER_OPTIONS",
    "SYSTEM_CLOCK",
    "ArgumentError",
    "ArgumentTypeError",
    "ArgumentValueError",
    "Brake",
    "BreakerOptions",
    "BreakerState",
    "BreakerStats",
    "CircuitBreaker",
    "CircuitOpenError",
    "Clock",
    "ConfigurationError",
    "Decision",
    "DecisionSource",
    "Done",
    "Drop",
    "Dropped",
    "Event",
    "EventAttributes",
    "EventBus",
    "EventRecorder",
    "FailOpenGuard",
    "Failed",
    "GuardMode",
    "GuardOptions",
    "GuardStats",
    "Limiter",
    "LimiterUnavailable",
    "LocalLimiter",
    "LocalLimiterOptions",
    "LocalLimiterStats",
    "Outcome",
    "Proceed",
    "QueueClosedError",
    "Rate",
    "RedisLimiter",
    "RedisLimiterOptions",
    "RedisLimiterStats",
    "RedisLimiterUnavailable",
    "ReleaseOptions",
    "ReleaseQueue",
    "ReleaseState",
    "ReleaseStats",
    "Replan",
    "ResilientError",
    "Severity",
    "Superseded",
    "SystemClock",
    "Ticket",
    "VirtualClock",
    "__version__",
]
