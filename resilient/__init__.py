"""resilient: asyncio guards against the failure mechanisms behind the 2026 AI outages.

Layers (imports point down only):

    patterns      ratelimit, breaker, ...   (each knows clock and events, never an adapter)
    foundations   clock, events             (know no pattern)

``resilient`` never imports ``chaos``.
"""

from resilient.clock import SYSTEM_CLOCK, Clock, SystemClock, VirtualClock
from resilient.events import DEFAULT_EVENTS, Event, EventBus, EventRecorder, Severity

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_EVENTS",
    "SYSTEM_CLOCK",
    "Clock",
    "Event",
    "EventBus",
    "EventRecorder",
    "Severity",
    "SystemClock",
    "VirtualClock",
    "__version__",
]
