"""Rate limits that fail open: "the limiter does not know" never becomes "over the limit".

- :class:`Rate` in, :class:`Decision` out; ``Decision.source`` says who decided.
- :class:`LocalLimiter`: GCRA per key in this process, bounded memory.
- :class:`RedisLimiter`: the same GCRA in one Lua script per decision, shared through Redis.
- :class:`FailOpenGuard`: asks a primary limiter within a time budget and, when it cannot
  answer, decides from this instance's share (or allows): never a false denial.

Every option and its default is in ``_options.py``, every event in ``_events.py``, every error
in :mod:`resilient.errors`. :class:`RedisLimiter` (redis-py) and :class:`FailOpenGuard`
(pybreaker) are imported when first used.
"""

from typing import TYPE_CHECKING

from resilient._lazy import lazy_exports
from resilient.errors import LimiterUnavailable, RedisLimiterUnavailable
from resilient.ratelimit._events import (
    GUARD_DEGRADED,
    GUARD_EVENT_SOURCE,
    GUARD_RECOVERED,
    GUARD_SUSPECTED_LIMITER_FAULT,
    LOCAL_EVENT_SOURCE,
    LOCAL_OVERFLOW,
    REDIS_CLIENT_UNSUPPORTED,
    REDIS_EVENT_SOURCE,
    REDIS_ROUND_TRIP_FAILED,
    REDIS_SCRIPT_RELOADED,
    GuardDegraded,
    GuardRecovered,
    LocalLimiterOverflow,
    RedisClientUnsupported,
    RedisRoundTripFailed,
    RedisScriptReloaded,
    SuspectedLimiterFault,
)
from resilient.ratelimit._local import LocalLimiter, LocalLimiterStats
from resilient.ratelimit._options import (
    DEFAULT_GUARD_OPTIONS,
    DEFAULT_LOCAL_LIMITER_OPTIONS,
    DEFAULT_MAX_MEMORY,
    DEFAULT_PREFIX,
    DEFAULT_REDIS_LIMITER_OPTIONS,
    ENTRY_BYTES,
    GUARD_BREAKER_OPTIONS,
    GuardMode,
    GuardOptions,
    LocalLimiterOptions,
    RedisLimiterOptions,
    TimeSource,
)
from resilient.ratelimit._types import (
    MAX_SPAN_US,
    Decision,
    DecisionSource,
    Limiter,
    Rate,
    RateLookup,
)

if TYPE_CHECKING:
    from resilient.ratelimit._guard import FailOpenGuard, GuardStats
    from resilient.ratelimit._redis import RedisLimiter, RedisLimiterStats

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "resilient.ratelimit._guard": ["FailOpenGuard", "GuardStats"],
        "resilient.ratelimit._redis": ["RedisLimiter", "RedisLimiterStats"],
    },
)

__all__ = [
    "DEFAULT_GUARD_OPTIONS",
    "DEFAULT_LOCAL_LIMITER_OPTIONS",
    "DEFAULT_MAX_MEMORY",
    "DEFAULT_PREFIX",
    "DEFAULT_REDIS_LIMITER_OPTIONS",
    "ENTRY_BYTES",
    "GUARD_BREAKER_OPTIONS",
    "GUARD_DEGRADED",
    "GUARD_EVENT_SOURCE",
    "GUARD_RECOVERED",
    "GUARD_SUSPECTED_LIMITER_FAULT",
    "LOCAL_EVENT_SOURCE",
    "LOCAL_OVERFLOW",
    "MAX_SPAN_US",
    "REDIS_CLIENT_UNSUPPORTED",
    "REDIS_EVENT_SOURCE",
    "REDIS_ROUND_TRIP_FAILED",
    "REDIS_SCRIPT_RELOADED",
    "Decision",
    "DecisionSource",
    "FailOpenGuard",
    "GuardDegraded",
    "GuardMode",
    "GuardOptions",
    "GuardRecovered",
    "GuardStats",
    "Limiter",
    "LimiterUnavailable",
    "LocalLimiter",
    "LocalLimiterOptions",
    "LocalLimiterOverflow",
    "LocalLimiterStats",
    "Rate",
    "RateLookup",
    "RedisClientUnsupported",
    "RedisLimiter",
    "RedisLimiterOptions",
    "RedisLimiterStats",
    "RedisLimiterUnavailable",
    "RedisRoundTripFailed",
    "RedisScriptReloaded",
    "SuspectedLimiterFault",
    "TimeSource",
]
