"""An asyncio circuit breaker on pybreaker's state machine (see ``_breaker.py``).

- :class:`CircuitBreaker` and its :class:`BreakerOptions` (every default in ``_options.py``),
  the right to one call (:class:`Permit`), its state and stats (``_permit.py``);
- its events (``_events.py``): ``opened``, ``half_opened``, ``closed``, ``isolated``,
  ``sync_lost``, ``sync_restored``;
- when it trips: a :class:`TripPolicy` over a :class:`TripState` (``_policy.py``):
  :class:`ConsecutiveFailures`, :class:`FailureRate` over a :class:`CountWindow` or a
  :class:`TimeWindow` (``_window.py``), or :class:`AnyOf` them (``a | b``);
- state shared across processes through Redis: :class:`BreakerSync` (``_sync.py``);
- its error: :class:`~resilient.errors.CircuitOpenError`.

The options, events and windows import nothing heavy; the breaker itself (and pybreaker, which
imports redis-py) is imported when first used.
"""

from typing import TYPE_CHECKING

from resilient._lazy import lazy_exports
from resilient.breaker._events import (
    BREAKER_CLOSED,
    BREAKER_EVENT_SOURCE,
    BREAKER_HALF_OPENED,
    BREAKER_ISOLATED,
    BREAKER_OPENED,
    BREAKER_SYNC_LOST,
    BREAKER_SYNC_RESTORED,
    BreakerClosed,
    BreakerHalfOpened,
    BreakerIsolated,
    BreakerOpened,
    BreakerSyncLost,
    BreakerSyncRestored,
)
from resilient.breaker._options import (
    DEFAULT_BREAKER_OPTIONS,
    DEFAULT_BREAKER_SYNC_OPTIONS,
    DEFAULT_FAILURE_RATE_THRESHOLD,
    DEFAULT_MINIMUM_CALLS,
    DEFAULT_SLOW_CALL_DURATION,
    DEFAULT_SLOW_CALL_RATE_THRESHOLD,
    DEFAULT_WINDOW_SECONDS,
    DEFAULT_WINDOW_SIZE,
    BreakerOptions,
    BreakerSyncOptions,
    Exclusion,
)
from resilient.breaker._window import CountWindow, TimeWindow
from resilient.errors import CircuitOpenError

if TYPE_CHECKING:
    from resilient.breaker._breaker import CircuitBreaker
    from resilient.breaker._permit import BreakerState, BreakerStats, Permit
    from resilient.breaker._policy import (
        AnyOf,
        ConsecutiveFailures,
        FailureRate,
        TripPolicy,
        TripState,
    )
    from resilient.breaker._sync import BreakerSync

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "resilient.breaker._breaker": ["CircuitBreaker"],
        "resilient.breaker._permit": ["BreakerState", "BreakerStats", "Permit"],
        "resilient.breaker._policy": [
            "AnyOf",
            "ConsecutiveFailures",
            "FailureRate",
            "TripPolicy",
            "TripState",
        ],
        "resilient.breaker._sync": ["BreakerSync"],
    },
)

__all__ = [
    "BREAKER_CLOSED",
    "BREAKER_EVENT_SOURCE",
    "BREAKER_HALF_OPENED",
    "BREAKER_ISOLATED",
    "BREAKER_OPENED",
    "BREAKER_SYNC_LOST",
    "BREAKER_SYNC_RESTORED",
    "DEFAULT_BREAKER_OPTIONS",
    "DEFAULT_BREAKER_SYNC_OPTIONS",
    "DEFAULT_FAILURE_RATE_THRESHOLD",
    "DEFAULT_MINIMUM_CALLS",
    "DEFAULT_SLOW_CALL_DURATION",
    "DEFAULT_SLOW_CALL_RATE_THRESHOLD",
    "DEFAULT_WINDOW_SECONDS",
    "DEFAULT_WINDOW_SIZE",
    "AnyOf",
    "BreakerClosed",
    "BreakerHalfOpened",
    "BreakerIsolated",
    "BreakerOpened",
    "BreakerOptions",
    "BreakerState",
    "BreakerStats",
    "BreakerSync",
    "BreakerSyncLost",
    "BreakerSyncOptions",
    "BreakerSyncRestored",
    "CircuitBreaker",
    "CircuitOpenError",
    "ConsecutiveFailures",
    "CountWindow",
    "Exclusion",
    "FailureRate",
    "Permit",
    "TimeWindow",
    "TripPolicy",
    "TripState",
]
