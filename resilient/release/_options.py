"""Every option of a :class:`~resilient.release.ReleaseQueue`, with its default and where the
default comes from.

The defaults are taken from tools that each hold one piece of a safe release (issue 9):
client-go's workqueue (overall rate, per-item backoff), Kubernetes' slow-start batches and
deployment controller (ramp, retries), Karpenter's disruption budget, the node lifecycle
controller (slowing evictions) and the cluster autoscaler (halting on unready nodes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from resilient._validate import Instance, Integer, Number, check_fields, option
from resilient.errors import ArgumentValueError

__all__ = [
    "DEFAULT_BACKOFF_INITIAL",
    "DEFAULT_BACKOFF_MAX",
    "DEFAULT_BATCH",
    "DEFAULT_BUDGET_SHARE",
    "DEFAULT_HALT_ABOVE",
    "DEFAULT_INTERVAL",
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_RELEASE_OPTIONS",
    "DEFAULT_SLOW_ABOVE",
    "DEFAULT_SLOW_FACTOR",
    "ReleaseOptions",
]

DEFAULT_BATCH = 10
"""Starts per :data:`DEFAULT_INTERVAL`: client-go's default controller rate limiter lets 10
items a second through its overall bucket. Its burst of 100 is left out on purpose: a burst of
a hundred queued actions after a pause is the 2026-03-04 incident."""

DEFAULT_INTERVAL = 1.0
"""Seconds of the sliding window ``batch`` applies to (client-go's 10 per second)."""

DEFAULT_BUDGET_SHARE = 0.10
"""Share of the capacity that may be out of service at once: Karpenter's default disruption
budget (``nodes: "10%"``), rounded up as Karpenter rounds it."""

DEFAULT_SLOW_FACTOR = 10.0
"""The release rate is divided by this much while slowed: Kubernetes' node lifecycle
controller goes from 0.1 evictions/s (``--node-eviction-rate``) to 0.01/s
(``--secondary-node-eviction-rate``) in an unhealthy zone."""

DEFAULT_HALT_ABOVE = 0.45
"""Above this unhealthy share nothing that takes capacity out starts: the cluster autoscaler
halts above 45% unready nodes (``--max-total-unready-percentage=45``)."""

DEFAULT_SLOW_ABOVE = 0.25
"""Above this unhealthy share the release slows. No tool gives this one: the node lifecycle
controller slows at 55% of a zone unhealthy, which is past the autoscaler's 45% halt, so the
slowing must start below the halt; a quarter of the fleet unhealthy is chosen as "well before
the halt, well above the disruption budget's 10%"."""

DEFAULT_MAX_AGE = 300.0
"""Seconds after which a queued action is too old to apply: the five minutes Kubernetes' node
lifecycle controller waited before evicting pods from an unreachable node
(``--pod-eviction-timeout=5m``); an action computed longer ago than that was computed from a
different world."""

DEFAULT_MAX_ATTEMPTS = 16
"""Runs of one action before it ends as failed: the first and 15 retries, as Kubernetes'
deployment controller (``maxRetries = 15``, backoff 5 ms to 82 s, about 164 s in all: well
within :data:`DEFAULT_MAX_AGE`)."""

DEFAULT_BACKOFF_INITIAL = 0.005
"""Seconds before the first retry of an action: client-go's per-item exponential backoff
starts at 5 ms."""

DEFAULT_BACKOFF_MAX = 1000.0
"""Seconds the backoff before a retry never exceeds: client-go's per-item backoff caps at
1000 s."""


@dataclass(frozen=True, slots=True)
class ReleaseOptions:
    """How a :class:`~resilient.release.ReleaseQueue` paces, bounds and brakes its release.

    Cross-field rules: ``ramp_start <= batch``, ``slow_above <= halt_above`` and
    ``backoff_initial <= backoff_max``.
    """

    batch: int = option(DEFAULT_BATCH, Integer(min=1))
    """At most this many actions start within any ``interval`` (a sliding window, not a token
    bucket: no burst above it, ever). See :data:`DEFAULT_BATCH`."""
    interval: float = option(DEFAULT_INTERVAL, Number(min=0, min_open=True, unit="seconds"))
    """Seconds of the sliding window ``batch`` applies to. See :data:`DEFAULT_INTERVAL`. It is
    also how often the queue reads the state again while the world blocks it (a halt, a full
    budget, a followed breaker that is open, a state that cannot be read)."""
    max_in_flight: int = option(10, Integer(min=1))
    """At most this many actions run at once. Default 10, one batch: actions that outlast the
    interval never have more than a batch's worth under way."""
    ramp_start: int = option(1, Integer(min=1))
    """Starts allowed per interval right after the queue is made, resumed, or released from a
    halt: Kubernetes' slow-start batches begin at 1 (``SlowStartInitialBatchSize``). The
    allowance doubles each time as many actions have succeeded as it allows, up to ``batch``,
    and halves (down to 1) on every failed attempt."""
    budget_units: float = option(math.inf, Number(min=0, finite=False, unit="units"))
    """Units that may be out of service at once, whatever the capacity (infinite: no absolute
    bound, only ``budget_share``). The budget is the smaller of this and ``budget_share``."""
    budget_share: float = option(DEFAULT_BUDGET_SHARE, Number(min=0, max=1, unit="capacity"))
    """Share of the capacity read at commit time that may be out of service at once, rounded
    up to whole units. See :data:`DEFAULT_BUDGET_SHARE`."""
    slow_above: float = option(DEFAULT_SLOW_ABOVE, Number(min=0, max=1, unit="unhealthy share"))
    """Above this unhealthy share, actions that take capacity out start ``slow_factor`` times
    slower (1 turns it off). See :data:`DEFAULT_SLOW_ABOVE`."""
    slow_factor: float = option(DEFAULT_SLOW_FACTOR, Number(min=1, unit="times"))
    """How much slower the release runs while slowed: the window of ``batch`` starts is
    ``interval * slow_factor`` seconds long. See :data:`DEFAULT_SLOW_FACTOR`."""
    halt_above: float = option(DEFAULT_HALT_ABOVE, Number(min=0, max=1, unit="unhealthy share"))
    """Above this unhealthy share, no action that takes capacity out starts until the share
    falls back (1 turns it off). See :data:`DEFAULT_HALT_ABOVE`."""
    max_age: float = option(
        DEFAULT_MAX_AGE, Number(min=0, min_open=True, finite=False, unit="seconds")
    )
    """Seconds after its submission that an action is too old to apply (infinite: never); at
    commit time an older one is dropped, or replanned by the ``revalidate`` callback. See
    :data:`DEFAULT_MAX_AGE`."""
    max_attempts: int = option(DEFAULT_MAX_ATTEMPTS, Integer(min=1))
    """Runs of one action (the first included) before it ends as failed. See
    :data:`DEFAULT_MAX_ATTEMPTS`."""
    backoff_initial: float = option(DEFAULT_BACKOFF_INITIAL, Number(min=0, unit="seconds"))
    """Seconds before the first retry; each further retry waits twice as long as the one
    before, up to ``backoff_max``. See :data:`DEFAULT_BACKOFF_INITIAL`."""
    backoff_max: float = option(DEFAULT_BACKOFF_MAX, Number(min=0, unit="seconds"))
    """The longest wait before a retry. See :data:`DEFAULT_BACKOFF_MAX`."""
    backoff_jitter: float = option(1.0, Number(min=0, max=1, unit="share"))
    """Share of each backoff drawn at random: the wait is ``delay * (1 - backoff_jitter * U)``
    with ``U`` uniform in [0, 1). 1 is "full jitter" (AWS's recommendation, and tenacity's
    ``wait_random_exponential``): retries of many keys that failed together do not come back
    together. 0 makes the schedule exact (tests)."""
    state_timeout: float = option(1.0, Number(min=0, min_open=True, unit="seconds"))
    """Seconds an awaitable ``state()`` may take; past it the state counts as unavailable and
    nothing starts until it can be read (one interval later). A sync ``state()`` cannot be
    interrupted: it must not block."""
    revalidate_timeout: float = option(1.0, Number(min=0, min_open=True, unit="seconds"))
    """Seconds an awaitable ``revalidate`` answer may take; past it the action is dropped with
    the reason (nothing is applied on a verdict that never came)."""
    routine_events: bool = option(True, Instance(bool, "a bool"))
    """Emit the events of routine endings: ``done`` (DEBUG) for every action that succeeded,
    ``superseded`` (INFO) for every one a newer action of its key replaced. Failures, drops
    and replans are always emitted, and every ending is on its ticket and in the stats. Turn
    it off where an event per action is too many: building one costs about as much as the
    rest of an action's way through an unthrottled queue (``bench/bench_release.py``)."""

    def __post_init__(self) -> None:
        check_fields(self)
        if self.ramp_start > self.batch:
            raise ArgumentValueError(
                f"ReleaseOptions.ramp_start must be <= batch ({self.batch}), "
                f"got {self.ramp_start!r}"
            )
        if self.slow_above > self.halt_above:
            raise ArgumentValueError(
                f"ReleaseOptions.slow_above must be <= halt_above ({self.halt_above:g}), "
                f"got {self.slow_above!r}"
            )
        if self.backoff_initial > self.backoff_max:
            raise ArgumentValueError(
                f"ReleaseOptions.backoff_initial must be <= backoff_max ({self.backoff_max:g}), "
                f"got {self.backoff_initial!r}"
            )


DEFAULT_RELEASE_OPTIONS = ReleaseOptions()
"""10 starts per second at most, 10 in flight, a ramp from 1, 10% of the capacity out at
once, slow tenfold above 25% unhealthy and halt above 45%, drop actions older than 5 minutes,
16 attempts with full-jitter backoff from 5 ms to 1000 s."""
