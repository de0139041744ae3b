"""How many calls a :class:`~resilient.bulkhead.Bulkhead` lets run at once: its ``limit``.

A limit is a small value the bulkhead owns the state for, in the manner of tenacity's policies:
the bulkhead reports each call that ended as a :class:`Sample` (its latency *from admission*,
the calls in flight when it was admitted, whether it was dropped) and reads :attr:`Limit.limit`
afterwards. Time a caller spent waiting in the bulkhead's own line is not the dependency's, so
it is never part of a sample: a healthy dependency behind a long line keeps its limit.

- :class:`FixedLimit`: a constant (the bulkhead's default, 25).
- :class:`AIMDLimit`: additive increase, multiplicative decrease on drops (Netflix
  concurrency-limits' ``AIMDLimit``).
- :class:`Gradient2Limit`: follows the ratio of the long-term average latency to the recent
  one (Netflix's ``Gradient2Limit``, fed one averaged sample per window as Netflix's
  ``WindowedLimit`` does).

Every time is read from the bulkhead's injected clock (``Sample.time``), so a limit runs in
virtual time in tests. A cancelled call gives no sample: cancellation says nothing of the
dependency.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

from resilient._validate import Instance, Integer, Number, check
from resilient.bulkhead._options import (
    DEFAULT_AIMD_OPTIONS,
    DEFAULT_GRADIENT2_OPTIONS,
    GRADIENT2_WARMUP,
    MAX_LIMIT,
    AIMDLimitOptions,
    Gradient2LimitOptions,
)

__all__ = ["AIMDLimit", "FixedLimit", "Gradient2Limit", "Limit", "Sample", "read_limit"]

_INF = math.inf

GRADIENT_FLOOR = 0.5
"""Netflix's Gradient2 never lets one update shrink the estimate by more than half (outliers)."""
LONG_RESET_RATIO = 2.0
"""When the long-term latency is more than twice the recent one (a recovery after a long
overload), Netflix's Gradient2 shrinks the long-term average at once, by :data:`LONG_DECAY`."""
LONG_DECAY = 0.95
"""See :data:`LONG_RESET_RATIO`."""

_TIME = Number(unit="seconds")
_LATENCY = Number(min=0, unit="seconds")
_IN_FLIGHT = Integer(min=0)
_LIMIT = Integer(min=1, max=MAX_LIMIT)


class Sample:
    """One call that ended, as a bulkhead reports it to its limit.

    ``time``: when it ended, on the bulkhead's clock; ``latency``: seconds from its admission
    to its end (never the time it waited in line); ``in_flight``: calls in flight when it was
    admitted, itself included; ``dropped``: it failed with a fault of the dependency. Every
    field is checked: a wrong one raises an ``ArgumentError`` naming ``Sample.<field>``.

    A bulkhead makes one per call, so the usual case (floats, an int, a bool, in range) is
    judged in one expression and only anything else goes through the four rules, which accept
    what it accepts and name what they refuse: 0.6 us a sample against 4.5 us for the four
    checks (``timeit`` of both on the development machine, while busy), where the whole
    admission and release of a call costs 2 to 4 us (``bench/bench_bulkhead.py``).
    """

    __slots__ = ("dropped", "in_flight", "latency", "time")

    def __init__(self, time: float, latency: float, in_flight: int, dropped: bool) -> None:
        if not (
            type(time) is float
            and -_INF < time < _INF
            and type(latency) is float
            and 0.0 <= latency < _INF
            and type(in_flight) is int
            and in_flight >= 0
            and type(dropped) is bool
        ):
            time = check("Sample.time", time, _TIME)
            latency = check("Sample.latency", latency, _LATENCY)
            in_flight = check("Sample.in_flight", in_flight, _IN_FLIGHT)
            dropped = check("Sample.dropped", dropped, Instance(bool, "a bool"))
        self.time = time
        self.latency = latency
        self.in_flight = in_flight
        self.dropped = dropped

    def __repr__(self) -> str:
        return (
            f"Sample(time={self.time!r}, latency={self.latency!r}, "
            f"in_flight={self.in_flight!r}, dropped={self.dropped!r})"
        )


@runtime_checkable
class Limit(Protocol):
    """What a bulkhead asks of its limit. Write your own with these two members."""

    @property
    def limit(self) -> int:
        """Calls allowed in flight now: an int >= 1."""
        ...

    def on_sample(self, sample: Sample) -> None:
        """A call ended (see :class:`Sample`)."""
        ...


class FixedLimit:
    """A limit that never changes: at most ``limit`` calls at once (a semaphore's bound)."""

    __slots__ = ("_limit",)

    def __init__(self, limit: int) -> None:
        self._limit: int = check("FixedLimit.limit", limit, _LIMIT)

    @property
    def limit(self) -> int:
        return self._limit

    def on_sample(self, sample: Sample) -> None:
        """Nothing changes."""

    def __repr__(self) -> str:
        return f"FixedLimit({self._limit})"


class AIMDLimit:
    """Additive increase, multiplicative decrease (Netflix concurrency-limits' ``AIMDLimit``).

    A dropped call, or one slower than ``timeout``, multiplies the limit by ``backoff_ratio``
    (rounded down); a call that went well while at least half the limit was in flight adds one
    (one at a time while the dependency keeps up, as a TCP window grows); a call admitted with
    less than half the limit in flight changes nothing (the limit is not what held it back).
    The limit stays within ``min_limit`` and ``max_limit``. See :class:`AIMDLimitOptions` for
    the defaults and their sources.
    """

    __slots__ = ("_limit", "options")

    def __init__(self, options: AIMDLimitOptions = DEFAULT_AIMD_OPTIONS) -> None:
        self.options = check(
            "AIMDLimit.options", options, Instance(AIMDLimitOptions, "an AIMDLimitOptions")
        )
        self._limit = options.initial_limit

    @property
    def limit(self) -> int:
        return self._limit

    def on_sample(self, sample: Sample) -> None:
        options = self.options
        limit = self._limit
        if sample.dropped or sample.latency > options.timeout:
            limit = int(limit * options.backoff_ratio)
        elif sample.in_flight * 2 >= limit:
            limit += 1
        else:
            return
        self._limit = min(options.max_limit, max(options.min_limit, limit))

    def __repr__(self) -> str:
        return f"AIMDLimit(limit={self._limit})"


class Gradient2Limit:
    """The limit follows latency (Netflix concurrency-limits' ``Gradient2Limit``).

    Samples are gathered in windows of ``window`` seconds (Netflix's ``WindowedLimit``); a
    window of at least ``window_min_samples`` samples (each at least ``min_latency``) makes
    one update from its average latency ``short`` and its largest ``in_flight``:

    - the long-term latency ``long`` is an exponential average of the updates' ``short``
      over ``long_window`` updates (a plain mean for the first 10); when it is more than twice
      ``short`` (a recovery) it shrinks by 5% at once;
    - with fewer than half the estimate in flight, the estimate stays (the limit is not what
      held the calls back);
    - else ``gradient = max(0.5, min(1, rtt_tolerance * long / short))``, the estimate
      moves ``smoothing`` of the way to ``gradient * estimate + queue_size``, within
      ``min_limit`` and ``max_limit``; the limit is the estimate rounded down.

    Under a latency increase the gradient is below 1 and the limit falls (by at most half per
    update); when latency recovers it is 1 and the limit climbs by ``smoothing * queue_size``
    per update. Drops are not read: a dependency failing fast is a breaker's or a throttle's
    business, a slow one this limit's. See :class:`Gradient2LimitOptions` for the defaults.
    """

    __slots__ = (
        "_count",
        "_estimate",
        "_long",
        "_long_count",
        "_long_sum",
        "_max_in_flight",
        "_sum",
        "_window_end",
        "options",
    )

    def __init__(self, options: Gradient2LimitOptions = DEFAULT_GRADIENT2_OPTIONS) -> None:
        self.options = check(
            "Gradient2Limit.options",
            options,
            Instance(Gradient2LimitOptions, "a Gradient2LimitOptions"),
        )
        self._estimate = float(options.initial_limit)
        self._long = 0.0
        self._long_count = 0
        self._long_sum = 0.0
        self._window_end = -_INF
        self._sum = 0.0
        self._count = 0
        self._max_in_flight = 0

    @property
    def limit(self) -> int:
        return int(self._estimate)

    @property
    def long_latency(self) -> float:
        """The long-term average latency in seconds (0 before the first update)."""
        return self._long

    def on_sample(self, sample: Sample) -> None:
        options = self.options
        if sample.latency < options.min_latency:
            return
        self._sum += sample.latency
        self._count += 1
        if sample.in_flight > self._max_in_flight:
            self._max_in_flight = sample.in_flight
        if sample.time < self._window_end:
            return
        count, total, in_flight = self._count, self._sum, self._max_in_flight
        self._count, self._sum, self._max_in_flight = 0, 0.0, 0
        self._window_end = sample.time + options.window
        if count >= options.window_min_samples:
            self._update(total / count, in_flight)

    def _update(self, short: float, in_flight: int) -> None:
        options = self.options
        long = self._add_long(short)
        if long > LONG_RESET_RATIO * short:
            self._long = long * LONG_DECAY
        estimate = self._estimate
        if in_flight * 2 < estimate:
            return
        gradient = max(GRADIENT_FLOOR, min(1.0, options.rtt_tolerance * long / short))
        target = estimate * gradient + options.queue_size
        estimate += (target - estimate) * options.smoothing
        self._estimate = max(float(options.min_limit), min(float(options.max_limit), estimate))

    def _add_long(self, short: float) -> float:
        """Netflix's ``ExpAvgMeasurement``: a plain mean for the first updates, then an
        exponential average with factor ``2 / (long_window + 1)``."""
        options = self.options
        if self._long_count < GRADIENT2_WARMUP:
            self._long_count += 1
            self._long_sum += short
            self._long = self._long_sum / self._long_count
        else:
            factor = 2.0 / (options.long_window + 1)
            self._long += (short - self._long) * factor
        return self._long

    def __repr__(self) -> str:
        return f"Gradient2Limit(limit={self.limit}, long_latency={self._long!r})"


def read_limit(owner: str, limit: Limit) -> int:
    """``limit.limit`` if it is an int within 1 and :data:`MAX_LIMIT`, else an
    ``ArgumentError`` naming ``owner``."""
    value = limit.limit
    if type(value) is int and 1 <= value <= MAX_LIMIT:
        return value
    return check(owner, value, _LIMIT)
