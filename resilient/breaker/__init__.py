"""An asyncio circuit breaker on pybreaker's state machine (see ``_breaker.py``).

- :class:`CircuitBreaker` and its :class:`BreakerOptions` (every default in ``_options.py``),
- its events (``_events.py``): ``opened``, ``half_opened``, ``closed``,
- when it trips: a :class:`TripPolicy` over a :class:`TripState` (``_policy.py``),
- its error: :class:`~resilient.errors.CircuitOpenError`.

The options and events import nothing heavy; the breaker itself (and pybreaker, which imports
redis-py) is imported when first used.
"""

from typing import TYPE_CHECKING

from resilient._lazy import lazy_exports
from resilient.breaker._events import (
    BREAKER_CLOSED,
    BREAKER_EVENT_SOURCE,
    BREAKER_HALF_OPENED,
    BREAKER_OPENED,
    BreakerClosed,
    BreakerHalfOpened,
    BreakerOpened,
)
from resilient.breaker._options import DEFAULT_BREAKER_OPTIONS, BreakerOptions, Exclusion
from resilient.errors import CircuitOpenError

if TYPE_CHECKING:
    from resilient.breaker._breaker import BreakerState, BreakerStats, CircuitBreaker, Permit
    from resilient.breaker._policy import ConsecutiveFailures, TripPolicy, TripState

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "resilient.breaker._breaker": ["BreakerState", "BreakerStats", "CircuitBreaker", "Permit"],
        "resilient.breaker._policy": ["ConsecutiveFailures", "TripPolicy", "TripState"],
    },
)

__all__ = [
    "BREAKER_CLOSED",
    "BREAKER_EVENT_SOURCE",
    "BREAKER_HALF_OPENED",
    "BREAKER_OPENED",
    "DEFAULT_BREAKER_OPTIONS",
    "BreakerClosed",
    "BreakerHalfOpened",
    "BreakerOpened",
    "BreakerOptions",
    "BreakerState",
    "BreakerStats",
    "CircuitBreaker",
    "CircuitOpenError",
    "ConsecutiveFailures",
    "Exclusion",
    "Permit",
    "TripPolicy",
    "TripState",
]
