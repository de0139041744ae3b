"""Failover across providers, with hedging and a fallback (the 2026-04-20 outage, the
single-cloud outage).

A :class:`Failover` sends each request to the first available of an ordered set of
:class:`Provider` s, each with its own breaker and rate limit; moves on when one fails; sends
one hedge to the next provider when the first is slower than its own recent p95; pays every
extra attempt from a shared budget; gives the :class:`FailoverResult` of a ``fallback``,
marked degraded, when nobody can answer; and lets a provider that comes back take its share
again slowly.

- the failover: ``_failover.py``; a provider and what is known of it: ``_lane.py``;
- every option and its default: ``_options.py``; every event: ``_events.py``; its error:
  :class:`~resilient.errors.ProvidersUnavailableError`.
"""

from typing import TYPE_CHECKING

from resilient._lazy import lazy_exports
from resilient.errors import ProvidersUnavailableError
from resilient.failover._events import (
    FAILOVER_EVENT_SOURCE,
    FAILOVER_FAILED_OVER,
    FAILOVER_FALLBACK,
    FAILOVER_HEDGED,
    FAILOVER_RECOVERING,
    FailedOver,
    FallbackUsed,
    Hedged,
    ProviderRecovering,
)
from resilient.failover._options import (
    DEFAULT_FAILOVER_OPTIONS,
    DEFAULT_HEDGE_QUANTILE,
    DEFAULT_SLOW_START_WINDOW,
    DEFAULT_TIMEOUT,
    PROVIDER_BREAKER_OPTIONS,
    FailoverOptions,
)

if TYPE_CHECKING:
    from resilient.failover._failover import AttemptBudget, Failover, FailoverResult
    from resilient.failover._lane import Provider, ProviderStats

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "resilient.failover._failover": ["AttemptBudget", "Failover", "FailoverResult"],
        "resilient.failover._lane": ["Provider", "ProviderStats"],
    },
)

__all__ = [
    "DEFAULT_FAILOVER_OPTIONS",
    "DEFAULT_HEDGE_QUANTILE",
    "DEFAULT_SLOW_START_WINDOW",
    "DEFAULT_TIMEOUT",
    "FAILOVER_EVENT_SOURCE",
    "FAILOVER_FAILED_OVER",
    "FAILOVER_FALLBACK",
    "FAILOVER_HEDGED",
    "FAILOVER_RECOVERING",
    "PROVIDER_BREAKER_OPTIONS",
    "AttemptBudget",
    "FailedOver",
    "Failover",
    "FailoverOptions",
    "FailoverResult",
    "FallbackUsed",
    "Hedged",
    "Provider",
    "ProviderRecovering",
    "ProviderStats",
    "ProvidersUnavailableError",
]
