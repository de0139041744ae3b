"""A bulkhead with adaptive concurrency, and client-side throttling (issue 12, part 4).

A :class:`Bulkhead` lets at most ``limit`` calls to one dependency run at once, keeps a short
bounded line, and sheds what it cannot admit in time (a
:class:`~resilient.errors.LoadShedError`, never a timeout). Its limit may adapt to the
dependency: :class:`AIMDLimit` (drops) or :class:`Gradient2Limit` (latency), Netflix
concurrency-limits' algorithms with their defaults. An :class:`AdaptiveThrottle` (Google SRE's
client-side throttling) rejects requests locally while the dependency refuses most of them,
alone or in front of a bulkhead.

- the bulkhead: ``_bulkhead.py``; the limits and their :class:`Sample`: ``_limits.py``; the
  throttle: ``_throttle.py``;
- every option and its default (with where the default comes from): ``_options.py``;
- every event: ``_events.py``; its errors: :class:`~resilient.errors.LoadShedError`'s leaves.

The options, events, errors and limits are imported with the package; the bulkhead and the
throttle when first used.
"""

from typing import TYPE_CHECKING

from resilient._lazy import lazy_exports
from resilient.bulkhead._events import (
    BULKHEAD_EVENT_SOURCE,
    BULKHEAD_LIMIT_CHANGED,
    BULKHEAD_SHED,
    SHED_DEADLINE,
    SHED_FULL,
    SHED_THROTTLED,
    THROTTLE_EVENT_SOURCE,
    THROTTLE_STARTED,
    THROTTLE_STOPPED,
    CallShed,
    LimitChanged,
    ThrottleStarted,
    ThrottleStopped,
)
from resilient.bulkhead._limits import AIMDLimit, FixedLimit, Gradient2Limit, Limit, Sample
from resilient.bulkhead._options import (
    DEFAULT_AIMD_OPTIONS,
    DEFAULT_BULKHEAD_OPTIONS,
    DEFAULT_GRADIENT2_OPTIONS,
    DEFAULT_THROTTLE_OPTIONS,
    AIMDLimitOptions,
    BulkheadOptions,
    Gradient2LimitOptions,
    ThrottleOptions,
)
from resilient.errors import (
    BulkheadDeadlineError,
    BulkheadFullError,
    LoadShedError,
    ThrottledError,
)

if TYPE_CHECKING:
    from resilient.bulkhead._bulkhead import Bulkhead, BulkheadStats
    from resilient.bulkhead._throttle import AdaptiveThrottle, ThrottleStats

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "resilient.bulkhead._bulkhead": ["Bulkhead", "BulkheadStats"],
        "resilient.bulkhead._throttle": ["AdaptiveThrottle", "ThrottleStats"],
    },
)

__all__ = [
    "BULKHEAD_EVENT_SOURCE",
    "BULKHEAD_LIMIT_CHANGED",
    "BULKHEAD_SHED",
    "DEFAULT_AIMD_OPTIONS",
    "DEFAULT_BULKHEAD_OPTIONS",
    "DEFAULT_GRADIENT2_OPTIONS",
    "DEFAULT_THROTTLE_OPTIONS",
    "SHED_DEADLINE",
    "SHED_FULL",
    "SHED_THROTTLED",
    "THROTTLE_EVENT_SOURCE",
    "THROTTLE_STARTED",
    "THROTTLE_STOPPED",
    "AIMDLimit",
    "AIMDLimitOptions",
    "AdaptiveThrottle",
    "Bulkhead",
    "BulkheadDeadlineError",
    "BulkheadFullError",
    "BulkheadOptions",
    "BulkheadStats",
    "CallShed",
    "FixedLimit",
    "Gradient2Limit",
    "Gradient2LimitOptions",
    "Limit",
    "LimitChanged",
    "LoadShedError",
    "Sample",
    "ThrottleOptions",
    "ThrottleStarted",
    "ThrottleStats",
    "ThrottleStopped",
    "ThrottledError",
]
