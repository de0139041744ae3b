"""How fast a :class:`~resilient.release.ReleaseQueue` may start actions, and how much it may
take out: pure arithmetic over the options, no clock and no I/O (the queue passes the time).

- :class:`Pacer`: a sliding window of starts whose allowance ramps up from ``ramp_start``;
- :func:`budget_limit`: the disruption budget for a state;
- :func:`backoff`: the wait before the next run of an action that failed.
"""

from __future__ import annotations

import collections
import math
import random

from resilient.release._options import ReleaseOptions
from resilient.release._types import ReleaseState

__all__ = ["Pacer", "backoff", "budget_limit"]


class Pacer:
    """At most ``allowance`` starts within any ``window`` seconds (a sliding log of the last
    starts, not a token bucket: there is no burst above the allowance, ever).

    The allowance begins at ``ramp_start`` (:meth:`restart`), doubles each time as many
    actions have succeeded as it allows, up to ``batch`` (TCP's slow start, Kubernetes'
    slow-start batches: growth needs evidence), and halves on every failed run, down to 1.
    A start is allowed at ``now`` when fewer than ``allowance`` starts happened in
    ``(now - window, now]``.
    """

    __slots__ = ("allowance", "batch", "log", "ramp_start", "successes")

    def __init__(self, options: ReleaseOptions) -> None:
        self.batch = options.batch
        self.ramp_start = options.ramp_start
        self.allowance = options.ramp_start
        self.successes = 0
        # The allowance never exceeds batch, so the last batch starts are all that matter.
        self.log: collections.deque[float] = collections.deque(maxlen=options.batch)

    def delay(self, now: float, window: float) -> float:
        """Seconds until a start is allowed (0 when it is now)."""
        allowance = self.allowance
        log = self.log
        if len(log) < allowance:
            return 0.0
        opens = log[-allowance] + window
        return opens - now if opens > now else 0.0

    def record(self, now: float) -> None:
        """A start happened at ``now``."""
        self.log.append(now)

    def succeeded(self) -> bool:
        """``successes`` reached the allowance (the queue counts them, and calls this then;
        never under the health brake): double the allowance, up to ``batch``. True when it
        grew."""
        self.successes = 0
        if self.allowance >= self.batch:
            return False
        self.allowance = min(self.batch, self.allowance * 2)
        return True

    def failed(self) -> None:
        """A run failed: halve the allowance."""
        self.allowance = max(1, self.allowance // 2)
        self.successes = 0

    def restart(self) -> None:
        """Back to ``ramp_start`` (after a pause or a halt)."""
        self.allowance = self.ramp_start
        self.successes = 0


def budget_limit(options: ReleaseOptions, state: ReleaseState) -> float:
    """Units that may be out of service at once for ``state``: the smaller of
    ``budget_units`` and ``budget_share`` of the capacity rounded up to whole units (as
    Karpenter rounds a percentage budget). The product is rounded to 9 decimals first, so that
    10% of 30 is 3, not the 4 that ``ceil(0.1 * 30)`` gives in binary floating point."""
    share = math.ceil(round(options.budget_share * state.capacity, 9))
    return min(options.budget_units, share)


def backoff(options: ReleaseOptions, failures: int, draw: random.Random) -> float:
    """Seconds to wait after the ``failures``-th failed run of an action: ``backoff_initial``
    doubled for each failure before it, at most ``backoff_max``, less a random share of up
    to ``backoff_jitter`` of it."""
    exponent = min(failures - 1, 1000)  # 2.0**1000 is finite; past it the cap holds anyway
    delay = min(options.backoff_max, options.backoff_initial * 2.0**exponent)
    jitter = options.backoff_jitter
    if jitter:
        delay *= 1.0 - jitter * draw.random()
    return delay
