"""Every option of a :class:`~resilient.bulkhead.Bulkhead`, of its adaptive limits and of an
:class:`~resilient.bulkhead.AdaptiveThrottle`, with its default and where the default comes
from.

The anchors (issue 12): Netflix concurrency-limits (``AIMDLimit``, ``Gradient2Limit`` and the
``WindowedLimit`` that feeds a limit one averaged sample per window: the builders' defaults,
read in the project's source); Resilience4j's semaphore bulkhead (25 calls at once); Google's
SRE book, chapter "Handling Overload", client-side throttling (``K = 2``, two minutes of
history).
"""

from __future__ import annotations

from dataclasses import dataclass

from resilient._validate import Integer, Number, TupleOf, check_fields, option
from resilient.errors import ArgumentValueError, ResilientError

__all__ = [
    "AIMD_BACKOFF_RATIO",
    "AIMD_INITIAL_LIMIT",
    "AIMD_MAX_LIMIT",
    "AIMD_MIN_LIMIT",
    "AIMD_TIMEOUT",
    "DEFAULT_AIMD_OPTIONS",
    "DEFAULT_BULKHEAD_OPTIONS",
    "DEFAULT_FIXED_LIMIT",
    "DEFAULT_GRADIENT2_OPTIONS",
    "DEFAULT_MAX_WAIT",
    "DEFAULT_MAX_WAITING",
    "DEFAULT_THROTTLE_OPTIONS",
    "GRADIENT2_INITIAL_LIMIT",
    "GRADIENT2_LONG_WINDOW",
    "GRADIENT2_MAX_LIMIT",
    "GRADIENT2_MIN_LIMIT",
    "GRADIENT2_QUEUE_SIZE",
    "GRADIENT2_RTT_TOLERANCE",
    "GRADIENT2_SMOOTHING",
    "GRADIENT2_WARMUP",
    "THROTTLE_BUCKETS",
    "THROTTLE_K",
    "THROTTLE_WINDOW",
    "WINDOW_MIN_LATENCY",
    "WINDOW_MIN_SAMPLES",
    "WINDOW_SECONDS",
    "AIMDLimitOptions",
    "BulkheadOptions",
    "Gradient2LimitOptions",
    "ThrottleOptions",
    "is_fault",
]

MAX_LIMIT = 2**31 - 1
"""The largest limit any option accepts (Netflix's limits are Java ints)."""

# -- the bulkhead --------------------------------------------------------------------------------

DEFAULT_FIXED_LIMIT = 25
"""Calls in flight at once when a bulkhead is given no limit: Resilience4j's semaphore
bulkhead ``maxConcurrentCalls``."""

DEFAULT_MAX_WAITING = 100
"""Callers that may wait for a permit at once (as :class:`~resilient.pool.PoolOptions`'s
``max_waiting``). Resilience4j's semaphore bulkhead has no line of its own; a bounded one lets a
short burst through instead of shedding it, and a full one sheds at once."""

DEFAULT_MAX_WAIT = 1.0
"""Seconds a caller may wait for a permit. Resilience4j waits 0 s by default (every burst above
the limit is shed); one second absorbs a burst and still answers a caller long before a
typical client deadline, with a shed it can act on instead of a timeout."""


def _is_exception_type(kind: object) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseException)


_FAILURES = TupleOf(_is_exception_type, "a tuple of exception types")


@dataclass(frozen=True, slots=True)
class BulkheadOptions:
    """The waiting line of a :class:`~resilient.bulkhead.Bulkhead` and what counts as its
    dependency's fault. How many calls run at once is its ``limit``'s answer."""

    max_waiting: int = option(DEFAULT_MAX_WAITING, Integer(min=0, max=MAX_LIMIT))
    """Callers that may wait for a permit at once, first come first served; one more is shed
    at once with :class:`~resilient.errors.BulkheadFullError`. 0: no line (a caller finding
    every permit taken is shed at once). See :data:`DEFAULT_MAX_WAITING`."""
    max_wait: float = option(DEFAULT_MAX_WAIT, Number(min=0, min_open=True, unit="seconds"))
    """Seconds a caller waits in line at most; then it is shed with
    :class:`~resilient.errors.BulkheadDeadlineError` (never left to time out elsewhere). See
    :data:`DEFAULT_MAX_WAIT`."""
    failures: tuple[type[BaseException], ...] = option((OSError,), _FAILURES)
    """Exceptions raised by a call that are faults of the dependency: the limit hears of them
    as dropped calls (and a throttle as refused ones). ``OSError`` covers refused, reset and
    timed-out connections (and ``TimeoutError``); anything else is the caller's, and the
    dependency answered. An error resilient raised is never the dependency's fault, though
    some are ``OSError``s (a pool's timeout): it says the process queued."""

    def __post_init__(self) -> None:
        check_fields(self)


DEFAULT_BULKHEAD_OPTIONS = BulkheadOptions()
"""100 callers waiting at most, each at most 1 s; ``OSError`` is the dependency's fault."""


def _check_range(owner: str, low: int, initial: int, high: int) -> None:
    if low > high:
        raise ArgumentValueError(f"{owner}.min_limit must be <= max_limit ({high}), got {low!r}")
    if not low <= initial <= high:
        raise ArgumentValueError(
            f"{owner}.initial_limit must be within min_limit and max_limit ({low} to {high}), "
            f"got {initial!r}"
        )


# -- AIMD ----------------------------------------------------------------------------------------

AIMD_INITIAL_LIMIT = 20
"""``AIMDLimit.Builder.initialLimit`` (Netflix concurrency-limits)."""
AIMD_MIN_LIMIT = 20
"""``AIMDLimit.Builder.minLimit``: with Netflix's defaults the limit never falls below where
it starts; set ``min_limit`` lower for a limit that can fall."""
AIMD_MAX_LIMIT = 200
"""``AIMDLimit.Builder.maxLimit``."""
AIMD_BACKOFF_RATIO = 0.9
"""``AIMDLimit.Builder.backoffRatio``: a dropped call multiplies the limit by this (Netflix
accepts 0.5 to 1, 1 excluded)."""
AIMD_TIMEOUT = 5.0
"""``AIMDLimit``'s ``DEFAULT_TIMEOUT``, 5 s: a call slower than this counts as dropped."""


@dataclass(frozen=True, slots=True)
class AIMDLimitOptions:
    """An :class:`~resilient.bulkhead.AIMDLimit`: one more per call that went well while at
    least half the limit was in use, times ``backoff_ratio`` per dropped (or too slow) call."""

    initial_limit: int = option(AIMD_INITIAL_LIMIT, Integer(min=1, max=MAX_LIMIT))
    """The limit before any sample. See :data:`AIMD_INITIAL_LIMIT`."""
    min_limit: int = option(AIMD_MIN_LIMIT, Integer(min=1, max=MAX_LIMIT))
    """The lowest the limit falls. See :data:`AIMD_MIN_LIMIT`."""
    max_limit: int = option(AIMD_MAX_LIMIT, Integer(min=1, max=MAX_LIMIT))
    """The highest the limit climbs. See :data:`AIMD_MAX_LIMIT`."""
    backoff_ratio: float = option(AIMD_BACKOFF_RATIO, Number(min=0.5, max=1, unit="share"))
    """The limit after a dropped call, as a share of the limit before it (rounded down, and
    always at least one less). See :data:`AIMD_BACKOFF_RATIO`."""
    timeout: float = option(AIMD_TIMEOUT, Number(min=0, min_open=True, unit="seconds"))
    """A call slower than this (from its admission) counts as dropped. See
    :data:`AIMD_TIMEOUT`."""

    def __post_init__(self) -> None:
        check_fields(self)
        if self.backoff_ratio == 1:
            raise ArgumentValueError(
                "AIMDLimitOptions.backoff_ratio must be < 1 (a drop must lower the limit), got 1"
            )
        _check_range("AIMDLimitOptions", self.min_limit, self.initial_limit, self.max_limit)


DEFAULT_AIMD_OPTIONS = AIMDLimitOptions()
"""Netflix's ``AIMDLimit`` defaults: 20 at first, 20 to 200, x0.9 per drop, 5 s timeout."""

# -- Gradient2 -----------------------------------------------------------------------------------

GRADIENT2_INITIAL_LIMIT = 20
"""``Gradient2Limit.Builder.initialLimit`` (Netflix concurrency-limits)."""
GRADIENT2_MIN_LIMIT = 20
"""``Gradient2Limit.Builder.minLimit``: with Netflix's defaults the limit never falls below
where it starts; set ``min_limit`` lower for a limit that can fall."""
GRADIENT2_MAX_LIMIT = 200
"""``Gradient2Limit.Builder.maxConcurrency``."""
GRADIENT2_SMOOTHING = 0.2
"""``Gradient2Limit.Builder.smoothing``: each update moves the limit this share of the way to
its new estimate."""
GRADIENT2_QUEUE_SIZE = 4
"""``Gradient2Limit.Builder.queueSize`` (``concurrency -> 4``): how far the estimate may grow
past ``gradient x limit`` per update while latency stays low."""
GRADIENT2_RTT_TOLERANCE = 1.5
"""``Gradient2Limit.Builder.rttTolerance``: latency may grow to 1.5 x the long-term average
before the limit falls."""
GRADIENT2_LONG_WINDOW = 600
"""``Gradient2Limit.Builder.longWindow``: the long-term average latency is an exponential
average over 600 updates (factor ``2 / (600 + 1)``)."""
GRADIENT2_WARMUP = 10
"""Netflix's ``ExpAvgMeasurement(longWindow, 10)``: the first 10 updates make a plain mean."""

WINDOW_SECONDS = 1.0
"""``WindowedLimit``'s ``DEFAULT_MIN_WINDOW_TIME`` and ``DEFAULT_MAX_WINDOW_TIME`` (both 1 s):
a gradient limit is updated once per window, from its samples' average."""
WINDOW_MIN_SAMPLES = 10
"""``WindowedLimit``'s ``DEFAULT_WINDOW_SIZE``: a window with fewer samples updates nothing."""
WINDOW_MIN_LATENCY = 100e-6
"""``WindowedLimit``'s ``DEFAULT_MIN_RTT_THRESHOLD`` (100 us): a faster sample says nothing
of the dependency's queue, and is left out."""


@dataclass(frozen=True, slots=True)
class Gradient2LimitOptions:
    """A :class:`~resilient.bulkhead.Gradient2Limit`: once per window, the limit follows the
    ratio of the long-term average latency to the window's."""

    initial_limit: int = option(GRADIENT2_INITIAL_LIMIT, Integer(min=1, max=MAX_LIMIT))
    """See :data:`GRADIENT2_INITIAL_LIMIT`."""
    min_limit: int = option(GRADIENT2_MIN_LIMIT, Integer(min=1, max=MAX_LIMIT))
    """See :data:`GRADIENT2_MIN_LIMIT`."""
    max_limit: int = option(GRADIENT2_MAX_LIMIT, Integer(min=1, max=MAX_LIMIT))
    """See :data:`GRADIENT2_MAX_LIMIT`."""
    smoothing: float = option(
        GRADIENT2_SMOOTHING, Number(min=0, min_open=True, max=1, unit="share")
    )
    """See :data:`GRADIENT2_SMOOTHING`."""
    queue_size: int = option(GRADIENT2_QUEUE_SIZE, Integer(min=0, max=MAX_LIMIT))
    """See :data:`GRADIENT2_QUEUE_SIZE`."""
    rtt_tolerance: float = option(GRADIENT2_RTT_TOLERANCE, Number(min=1, max=1e6, unit="times"))
    """See :data:`GRADIENT2_RTT_TOLERANCE`."""
    long_window: int = option(GRADIENT2_LONG_WINDOW, Integer(min=1, max=MAX_LIMIT))
    """See :data:`GRADIENT2_LONG_WINDOW`."""
    window: float = option(WINDOW_SECONDS, Number(min=0, min_open=True, unit="seconds"))
    """Seconds of samples averaged into one update. See :data:`WINDOW_SECONDS`."""
    window_min_samples: int = option(WINDOW_MIN_SAMPLES, Integer(min=1, max=MAX_LIMIT))
    """See :data:`WINDOW_MIN_SAMPLES`."""
    min_latency: float = option(WINDOW_MIN_LATENCY, Number(min=0, min_open=True, unit="seconds"))
    """Samples faster than this are left out. See :data:`WINDOW_MIN_LATENCY`."""

    def __post_init__(self) -> None:
        check_fields(self)
        _check_range("Gradient2LimitOptions", self.min_limit, self.initial_limit, self.max_limit)


DEFAULT_GRADIENT2_OPTIONS = Gradient2LimitOptions()
"""Netflix's ``Gradient2Limit`` defaults (20 at first, 20 to 200, smoothing 0.2, queue 4, rtt
tolerance 1.5, long window 600) over ``WindowedLimit``'s windows (1 s, 10 samples, 100 us)."""

# -- client-side throttling ----------------------------------------------------------------------

THROTTLE_K = 2.0
"""The SRE book's ``K``: requests are rejected locally once they exceed ``K`` times the
accepted ones ("Typically, 2"): the backend still sees up to twice what it accepts."""
THROTTLE_WINDOW = 120.0
"""Seconds of history: the SRE book keeps "the last two minutes"."""
THROTTLE_BUCKETS = 60
"""The window kept as 60 buckets of 2 s (two counters of 8 bytes each): the state is 960
bytes whatever the traffic, and the window slides in 2 s steps."""


@dataclass(frozen=True, slots=True)
class ThrottleOptions:
    """An :class:`~resilient.bulkhead.AdaptiveThrottle`: reject locally with probability
    ``max(0, (requests - k * accepts) / (requests + 1))`` over the last ``window`` seconds."""

    k: float = option(THROTTLE_K, Number(min=1, max=1e6, unit="times"))
    """See :data:`THROTTLE_K`. 1 throttles hardest; larger lets more through."""
    window: float = option(THROTTLE_WINDOW, Number(min=0, min_open=True, unit="seconds"))
    """See :data:`THROTTLE_WINDOW`."""
    buckets: int = option(THROTTLE_BUCKETS, Integer(min=1, max=10_000))
    """See :data:`THROTTLE_BUCKETS`: the state is ``16 * buckets`` bytes."""
    failures: tuple[type[BaseException], ...] = option((OSError,), _FAILURES)
    """Exceptions of a call through :meth:`~resilient.bulkhead.AdaptiveThrottle.call` that
    mean the dependency did not accept it (as :attr:`BulkheadOptions.failures`)."""

    def __post_init__(self) -> None:
        check_fields(self)


DEFAULT_THROTTLE_OPTIONS = ThrottleOptions()
"""The SRE book's throttle: K = 2 over two minutes (60 buckets of 2 s)."""


def is_fault(error: BaseException, failures: tuple[type[BaseException], ...]) -> bool:
    """Whether ``error`` is a fault of the dependency: one of ``failures``, and not an error
    resilient raised (a shed, a pool's timeout: the process queued, the dependency did not
    fail)."""
    return isinstance(error, failures) and not isinstance(error, ResilientError)
