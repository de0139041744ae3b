"""Rate limits that fail open: "the limiter does not know" never becomes "over the limit".

- :class:`Rate` in, :class:`Decision` out; ``Decision.source`` says who decided.
- :class:`LocalLimiter`: GCRA per key in this process, bounded memory.
- :class:`RedisLimiter`: the same GCRA in one Lua script per decision, shared through Redis.
- :class:`FailOpenGuard`: asks a primary limiter within a time budget and, when it cannot
  answer, decides from this instance's share (or allows): never a false denial.
"""

from resilient.ratelimit._errors import LimiterUnavailable
from resilient.ratelimit._guard import (
    DEFAULT_GUARD_OPTIONS,
    GUARD_BREAKER_OPTIONS,
    FailOpenGuard,
    GuardMode,
    GuardOptions,
    GuardStats,
)
from resilient.ratelimit._local import DEFAULT_MAX_KEYS, LocalLimiter, LocalLimiterStats
from resilient.ratelimit._redis import (
    RedisLimiter,
    RedisLimiterOptions,
    RedisLimiterStats,
    RedisLimiterUnavailable,
)
from resilient.ratelimit._types import Decision, DecisionSource, Limiter, Rate, RateLookup

__all__ = [
    "DEFAULT_GUARD_OPTIONS",
    "DEFAULT_MAX_KEYS",
    "GUARD_BREAKER_OPTIONS",
    "Decision",
    "DecisionSource",
    "FailOpenGuard",
    "GuardMode",
    "GuardOptions",
    "GuardStats",
    "Limiter",
    "LimiterUnavailable",
    "LocalLimiter",
    "LocalLimiterStats",
    "Rate",
    "RateLookup",
    "RedisLimiter",
    "RedisLimiterOptions",
    "RedisLimiterStats",
    "RedisLimiterUnavailable",
]
