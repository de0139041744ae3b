"""Every option of a :class:`~resilient.failover.Failover`, with its default and its source.

The anchors (issue 12): Polly v8's hedging (one extra attempt after a delay), gRPC's hedging
and retry throttling, Envoy's slow start (a host that comes back gets a share of traffic that
grows over a window), Resilience4j's breaker per backend. What none of them has is a hedge
delay that follows each provider's measured latency: here it is the provider's recent p95.
"""

from __future__ import annotations

from dataclasses import dataclass

from resilient._validate import Instance, Integer, Number, TupleOf, check_fields, option
from resilient.breaker import BreakerOptions

__all__ = [
    "DEFAULT_FAILOVER_OPTIONS",
    "DEFAULT_HEDGE_QUANTILE",
    "DEFAULT_SLOW_START_WINDOW",
    "DEFAULT_TIMEOUT",
    "PROVIDER_BREAKER_OPTIONS",
    "FailoverOptions",
]

DEFAULT_TIMEOUT = 10.0
"""Seconds a request may take, every attempt, hedge and fallback included, when the caller
gives no deadline."""

DEFAULT_HEDGE_QUANTILE = 0.95
"""A hedge is sent when the first attempt has taken longer than this quantile of the
provider's recent latencies: about 5% of requests are hedged while the provider is as it was
(the issue's "delay that follows the primary's measured p95")."""

DEFAULT_SLOW_START_WINDOW = 30.0
"""Seconds over which a provider that comes back gets its share back, linearly (Envoy's slow
start, which has no default window; 30 s is HAProxy's common ``slowstart``)."""

PROVIDER_BREAKER_OPTIONS = BreakerOptions(failure_threshold=5, reset_timeout=5.0)
"""The breaker each provider gets when it brings none: 5 failures in a row open it, probes
after 5 s (an outage is noticed within 5 requests, and probed every 5 s)."""


def _is_exception_type(kind: object) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseException)


@dataclass(frozen=True, slots=True)
class FailoverOptions:
    """How a :class:`~resilient.failover.Failover` spreads, hedges and moves requests."""

    timeout: float = option(DEFAULT_TIMEOUT, Number(min=0, min_open=True, unit="seconds"))
    """See :data:`DEFAULT_TIMEOUT`."""
    hedge: bool = option(True, Instance(bool, "a bool"))
    """Send at most one hedge per request, to the next provider, after the hedge delay."""
    hedge_quantile: float = option(
        DEFAULT_HEDGE_QUANTILE, Number(min=0, max=1, min_open=True, unit="quantile")
    )
    """See :data:`DEFAULT_HEDGE_QUANTILE`."""
    hedge_min_delay: float = option(0.005, Number(min=0, unit="seconds"))
    """The shortest hedge delay, whatever the measured latency (and the delay before a
    provider has latencies to measure is ``timeout / 4``)."""
    latency_samples: int = option(256, Integer(min=8, max=100_000))
    """Recent successful latencies kept per provider for its quantile (8 bytes each)."""
    health_weight: float = option(0.1, Number(min=0, max=1, min_open=True, unit="weight"))
    """Weight of the newest outcome in a provider's health (an exponentially weighted share of
    successes, 1.0 at start): 0.1 forgets an outcome over about 20 requests."""
    min_health: float = option(0.5, Number(min=0, max=1, unit="share"))
    """A provider whose health is below this is passed over while one above it is available."""
    slow_start_window: float = option(DEFAULT_SLOW_START_WINDOW, Number(min=0, unit="seconds"))
    """See :data:`DEFAULT_SLOW_START_WINDOW`; 0 gives a provider its whole share at once."""
    slow_start_min_share: float = option(0.1, Number(min=0, max=1, unit="share"))
    """The share a provider gets at the start of its slow start."""
    failures: tuple[type[BaseException], ...] = option(
        (OSError,), TupleOf(_is_exception_type, "a tuple of exception types")
    )
    """Exceptions of a provider's call that are the provider's faults (``OSError`` covers
    refused, reset and timed-out connections, and aiohttp's ``ClientOSError``; add your
    client's own: aiohttp's ``ClientResponseError`` for a 5xx, for one). Anything else is the
    caller's: it is raised as it is, and counts against no provider."""

    def __post_init__(self) -> None:
        check_fields(self)


DEFAULT_FAILOVER_OPTIONS = FailoverOptions()
"""10 s a request, one hedge after the provider's p95, providers under half health passed
over, a provider that comes back ramped over 30 s from 10% of its share."""
