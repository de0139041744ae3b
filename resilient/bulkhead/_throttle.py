"""Client-side throttling after Google's SRE book ("Handling Overload"): a client that sees its
dependency refuse most requests stops sending most of them, locally, with no round trip.

Over the last ``window`` seconds the throttle counts ``requests`` (every request the
application made, those it rejected locally included) and ``accepts`` (those the dependency
accepted), and rejects a new request with probability::

    max(0, (requests - k * accepts) / (requests + 1))

With ``k = 2`` a healthy dependency sees everything; one that accepts nothing sees a trickle
(the rejected requests still count, so the probability approaches but never reaches 1, and
recovery is noticed); in between, the dependency sees about ``k`` requests per one it accepts.

The window is ``buckets`` counters of ``window / buckets`` seconds each, in two fixed arrays:
the state is ``16 * buckets`` bytes whatever the traffic (960 bytes by default). The random
source is injectable (a seeded :class:`random.Random` makes a test exact) and is drawn from
only while the probability is above 0. A call that was cancelled counts as nothing (neither a
request nor an accept): cancellation says nothing of the dependency. Use one throttle from one
event loop (or one thread).
"""

from __future__ import annotations

import array
import math
import random as _random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from resilient._validate import Instance, Text, check, shown
from resilient.bulkhead._events import THROTTLE_EVENT_SOURCE, ThrottleStarted, ThrottleStopped
from resilient.bulkhead._options import DEFAULT_THROTTLE_OPTIONS, ThrottleOptions, is_fault
from resilient.clock import SYSTEM_CLOCK, Clock
from resilient.errors import ArgumentTypeError, ThrottledError
from resilient.events import DEFAULT_EVENTS, Emitter, EventBus

__all__ = ["AdaptiveThrottle", "ThrottleStats"]

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ThrottleStats:
    """A snapshot of one :class:`AdaptiveThrottle`."""

    requests: int
    """Requests counted in the window now (local rejections included)."""
    accepts: int
    """Requests the dependency accepted, in the window now."""
    reject_probability: float
    """The probability a request made now is rejected locally."""
    throttled: int
    """Requests rejected locally since the throttle was made."""


class AdaptiveThrottle:
    """Client-side throttling (see the module doc). ``await throttle.call(fn, *args)``, or
    :meth:`allow` then :meth:`record` for callers that report outcomes themselves (a
    :class:`~resilient.bulkhead.Bulkhead` does, given one as ``throttle``)."""

    def __init__(
        self,
        name: str,
        options: ThrottleOptions = DEFAULT_THROTTLE_OPTIONS,
        *,
        random: _random.Random | None = None,
        clock: Clock = SYSTEM_CLOCK,
        events: EventBus = DEFAULT_EVENTS,
    ) -> None:
        self.name = check("AdaptiveThrottle.name", name, Text(non_empty=True))
        self.options = check(
            "AdaptiveThrottle.options", options, Instance(ThrottleOptions, "a ThrottleOptions")
        )
        if random is None:
            random = _random.Random()
        self._random = check(
            "AdaptiveThrottle.random", random, Instance(_random.Random, "a random.Random or None")
        )
        self._clock = check("AdaptiveThrottle.clock", clock, Instance(Clock, "a Clock"))
        check("AdaptiveThrottle.events", events, Instance(EventBus, "an EventBus"))
        self._emit = Emitter(THROTTLE_EVENT_SOURCE, events, clock)
        buckets = options.buckets
        self._width = options.window / buckets
        self._requests = array.array("q", bytes(8 * buckets))
        self._accepts = array.array("q", bytes(8 * buckets))
        self._tick = self._now_tick()
        self._total_requests = 0
        self._total_accepts = 0
        self._throttled = 0
        self._throttling = False

    @property
    def reject_probability(self) -> float:
        """The probability a request made now is rejected locally."""
        self._advance()
        return self._probability()

    @property
    def stats(self) -> ThrottleStats:
        self._advance()
        return ThrottleStats(
            self._total_requests, self._total_accepts, self._probability(), self._throttled
        )

    @property
    def state_bytes(self) -> int:
        """Bytes the window's counters take: ``16 * buckets``, whatever the traffic."""
        return (len(self._requests) + len(self._accepts)) * self._requests.itemsize

    def allow(self) -> bool:
        """Whether to send one request now. False: it is rejected locally, and counted as a
        request. True: send it, then :meth:`record` whether the dependency accepted it (or
        record nothing if it was cancelled)."""
        slot = self._advance()
        probability = self._probability()
        if probability <= 0.0 or self._random.random() >= probability:
            return True
        self._requests[slot] += 1
        self._total_requests += 1
        self._throttled += 1
        self._follow()
        return False

    def record(self, accepted: bool) -> None:
        """One request was sent, and the dependency ``accepted`` it (True) or refused it or
        failed (False)."""
        if type(accepted) is not bool:
            raise ArgumentTypeError(
                f"AdaptiveThrottle.record(accepted) must be a bool, got {shown(accepted)}"
            )
        slot = self._advance()
        self._requests[slot] += 1
        self._total_requests += 1
        if accepted:
            self._accepts[slot] += 1
            self._total_accepts += 1
        self._follow()

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` unless the throttle rejects it locally
        (:class:`~resilient.errors.ThrottledError`, ``fn`` not called). An exception of
        ``options.failures`` counts as refused; any other outcome as accepted (the dependency
        answered); a cancellation as nothing."""
        if not callable(fn):
            raise ArgumentTypeError(
                f"AdaptiveThrottle.call(fn) must be a callable, got {shown(fn)}"
            )
        if not self.allow():
            raise self.rejection()
        try:
            result = await fn(*args, **kwargs)
        except Exception as error:
            self.record(not is_fault(error, self.options.failures))
            raise
        self.record(True)
        return result

    def rejection(self) -> ThrottledError:
        """The error for a request :meth:`allow` rejected."""
        return ThrottledError(
            self.name,
            "throttled",
            f"rejected locally with probability {self._probability():.3f} "
            f"({self._total_requests} requests, {self._total_accepts} accepted "
            f"in the last {self.options.window:g}s)",
        )

    # -- the window ----------------------------------------------------------------------------

    def _now_tick(self) -> int:
        return math.floor(self._clock.monotonic() / self._width)

    def _advance(self) -> int:
        """Empty the buckets whose time has passed; the slot of the bucket of now."""
        tick = self._now_tick()
        buckets = len(self._requests)
        passed = tick - self._tick
        if passed > 0:
            requests, accepts = self._requests, self._accepts
            if passed >= buckets:
                for slot in range(buckets):
                    requests[slot] = accepts[slot] = 0
                self._total_requests = self._total_accepts = 0
            else:
                for step in range(1, passed + 1):
                    slot = (self._tick + step) % buckets
                    self._total_requests -= requests[slot]
                    self._total_accepts -= accepts[slot]
                    requests[slot] = accepts[slot] = 0
            self._tick = tick
            self._follow()
        return tick % buckets

    def _probability(self) -> float:
        requests = self._total_requests
        return max(0.0, (requests - self.options.k * self._total_accepts) / (requests + 1))

    def _follow(self) -> None:
        """Emit when the throttle starts or stops rejecting."""
        throttling = self._total_requests > self.options.k * self._total_accepts
        if throttling is self._throttling:
            return
        self._throttling = throttling
        if throttling:
            self._emit(
                ThrottleStarted(
                    self.name, self._probability(), self._total_requests, self._total_accepts
                )
            )
        else:
            self._emit(ThrottleStopped(self.name, self._total_requests, self._total_accepts))

    def __repr__(self) -> str:
        return f"AdaptiveThrottle({self.name!r}, reject_probability={self._probability():.3f})"
