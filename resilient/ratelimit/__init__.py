"""Rate limits that fail open: "the limiter does not know" never becomes "over the limit".

- :class:`Rate` in, :class:`Decision` out; ``Decision.source`` says who decided.
- :class:`LocalLimiter`: GCRA per key in this process, bounded memory.
- :class:`RedisLimiter`: the same GCRA in one Lua script per decision, shared through Redis.
"""

from resilient.ratelimit._local import DEFAULT_MAX_KEYS, LocalLimiter, LocalLimiterStats
from resilient.ratelimit._redis import (
    RedisLimiter,
    RedisLimiterOptions,
    RedisLimiterStats,
    RedisLimiterUnavailable,
)
from resilient.ratelimit._types import Decision, DecisionSource, Limiter, Rate

__all__ = [
    "DEFAULT_MAX_KEYS",
    "Decision",
    "DecisionSource",
    "Limiter",
    "LocalLimiter",
    "LocalLimiterStats",
    "Rate",
    "RedisLimiter",
    "RedisLimiterOptions",
    "RedisLimiterStats",
    "RedisLimiterUnavailable",
]
