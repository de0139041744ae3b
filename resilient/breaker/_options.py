"""Every option of a :class:`~resilient.breaker.CircuitBreaker`, with its default, and the named
defaults of the trip policies and of Redis sharing.

The anchors (issue 12): Resilience4j's ``CircuitBreakerConfig`` defaults (failure rate 50%,
slow-call rate 100%, a call slower than 60 s is slow, a count window of the last 100 calls, at
least 100 calls before a rate is judged, one bucket a second in a time window) for the window
policies; pybreaker's ``fail_max`` (5) and a 30 s open state for the consecutive-failures
default the breaker has had since it landed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from resilient._validate import Instance, Integer, Number, Text, TupleOf, check_fields, option

__all__ = [
    "DEFAULT_BREAKER_OPTIONS",
    "DEFAULT_BREAKER_SYNC_OPTIONS",
    "DEFAULT_FAILURE_RATE_THRESHOLD",
    "DEFAULT_MINIMUM_CALLS",
    "DEFAULT_SLOW_CALL_DURATION",
    "DEFAULT_SLOW_CALL_RATE_THRESHOLD",
    "DEFAULT_WINDOW_SECONDS",
    "DEFAULT_WINDOW_SIZE",
    "MAX_WINDOW_BUCKETS",
    "MAX_WINDOW_SIZE",
    "BreakerOptions",
    "BreakerSyncOptions",
    "Exclusion",
]

Exclusion = type[BaseException] | Callable[[BaseException], bool]
"""An exception type, or a predicate on the exception, that does not count as a failure."""

DEFAULT_FAILURE_RATE_THRESHOLD = 0.5
"""Share of failed calls in the window that opens the circuit: Resilience4j's
``failureRateThreshold`` (50 percent)."""
DEFAULT_SLOW_CALL_RATE_THRESHOLD = 1.0
"""Share of slow calls in the window that opens the circuit: Resilience4j's
``slowCallRateThreshold`` (100 percent)."""
DEFAULT_SLOW_CALL_DURATION = 60.0
"""Seconds past which a call is slow: Resilience4j's ``slowCallDurationThreshold`` (60,000 ms)."""
DEFAULT_WINDOW_SIZE = 100
"""Calls a count window holds: Resilience4j's ``slidingWindowSize`` (100, ``COUNT_BASED``)."""
DEFAULT_WINDOW_SECONDS = 100.0
"""Seconds a time window spans: Resilience4j's ``slidingWindowSize`` (100) read as seconds, as
Resilience4j reads it for a ``TIME_BASED`` window, which it splits into one bucket a second."""
DEFAULT_MINIMUM_CALLS = 100
"""Calls in the window before a rate is judged: Resilience4j's ``minimumNumberOfCalls`` (100)."""
MAX_WINDOW_SIZE = 1_000_000
"""The largest count window: one byte a call, so at most 1 MB per breaker."""
MAX_WINDOW_BUCKETS = 10_000
"""The most buckets of a time window: 32 bytes a bucket, so at most 320,000 bytes per breaker."""


@dataclass(frozen=True, slots=True)
class BreakerOptions:
    """How a :class:`~resilient.breaker.CircuitBreaker` trips and recovers."""

    failure_threshold: int = option(5, Integer(min=1))
    """Consecutive failures (while closed) that open the circuit, when no ``policy`` is given
    (pybreaker's ``fail_max``, 5)."""
    reset_timeout: float = option(30.0, Number(min=0, unit="seconds"))
    """Seconds, on the breaker's clock, the circuit stays open before it lets probes through."""
    half_open_max_calls: int = option(1, Integer(min=1))
    """Probes allowed at once while half-open; one success closes the circuit, one failure
    opens it again. Other callers are rejected at once."""
    exclude: tuple[Exclusion, ...] = option(
        (), TupleOf(callable, "a tuple of exception types or predicates")
    )
    """Exception types, or predicates on the exception, that are not failures (they count as
    successes: the dependency answered, the answer was a business error)."""
    metrics_only: bool = option(False, Instance(bool, "a bool"))
    """Never reject: count, transition and emit events exactly as the breaker would, but let
    every call through (Resilience4j's ``DISABLED``/``METRICS_ONLY`` state, as a mode), so a
    breaker can be tried in production before it is trusted. ``stats.rejected`` then counts
    the calls it would have refused."""

    def __post_init__(self) -> None:
        check_fields(self)


DEFAULT_BREAKER_OPTIONS = BreakerOptions()
"""Trip after 5 consecutive failures, probe after 30 s, one probe at a time, exclude nothing,
enforce."""


@dataclass(frozen=True, slots=True)
class BreakerSyncOptions:
    """How a :class:`~resilient.breaker.BreakerSync` shares transitions through Redis."""

    prefix: str = option("breaker:", Text())
    """Prefix of every key (``<prefix><name>``, the last transition of a breaker) and of the
    channel (``<prefix>transitions``)."""
    round_trip_timeout: float = option(1.0, Number(min=0, min_open=True, unit="seconds"))
    """Seconds one publication or read may take before Redis is taken for down."""
    retry_interval: float = option(1.0, Number(min=0, min_open=True, unit="seconds"))
    """Seconds between attempts to reach Redis again while it is down (the breakers decide
    locally meanwhile)."""

    def __post_init__(self) -> None:
        check_fields(self)


DEFAULT_BREAKER_SYNC_OPTIONS = BreakerSyncOptions()
"""Keys and channel under ``breaker:``, 1 s per round trip, 1 s between reconnects."""
