"""When a closed circuit trips: a :class:`TripPolicy` over the breaker's :class:`TripState`.

Policies are small values, composed with ``|`` (tenacity's way): ``ConsecutiveFailures(5) |
FailureRate(0.5)`` trips when either would. The named defaults are Resilience4j's (see
``_options.py``).
"""

from __future__ import annotations

import math
from typing import Protocol

import pybreaker

from resilient._validate import Instance, Integer, Number, check
from resilient.breaker._options import (
    DEFAULT_FAILURE_RATE_THRESHOLD,
    DEFAULT_MINIMUM_CALLS,
    DEFAULT_SLOW_CALL_DURATION,
    DEFAULT_SLOW_CALL_RATE_THRESHOLD,
)
from resilient.breaker._window import Counts, CountWindow, TimeWindow
from resilient.errors import ArgumentValueError

__all__ = ["AnyOf", "ConsecutiveFailures", "FailureRate", "TripPolicy", "TripState"]


class TripState:
    """What a :class:`TripPolicy` reads and updates about the call being reported.

    ``failures`` is the count of failures (pybreaker's counter, reset when the circuit
    closes). ``now`` and ``duration`` (seconds from the permit to the outcome, on the
    breaker's clock: time the caller spent queued in this process before it asked for the
    permit is not the dependency's) are set for a policy whose ``timed`` attribute is true,
    else 0. ``epoch`` changes at every transition of the circuit: a policy that keeps a window
    starts it afresh then (Resilience4j resets its metrics on each transition).
    """

    __slots__ = ("_storage", "duration", "epoch", "now")

    def __init__(self, storage: pybreaker.CircuitBreakerStorage) -> None:
        self._storage = storage
        self.now = 0.0
        self.duration = 0.0
        self.epoch = 0

    @property
    def failures(self) -> int:
        """Failures counted since the count was last reset."""
        return int(self._storage.counter)

    def add_failure(self) -> int:
        """Count one more failure; the new count."""
        self._storage.increment_counter()
        return int(self._storage.counter)

    def reset_failures(self) -> None:
        """Forget the failures counted so far."""
        self._storage.reset_counter()


class TripPolicy(Protocol):
    """Decides, from the outcomes of calls made while the circuit is closed, when it trips.

    A policy with a true ``timed`` attribute is given ``now`` and ``duration`` in the state
    (the breaker reads its clock for it at each permit and outcome; other policies cost no
    clock read). A true return from either method opens the circuit.
    """

    def on_success(self, state: TripState) -> bool | None:
        """A call made while closed succeeded (the hot path: keep it cheap)."""
        ...

    def on_failure(self, state: TripState) -> bool:
        """A call made while closed failed; True to open the circuit."""
        ...


class _Composable:
    def __or__(self, other: TripPolicy) -> AnyOf:
        return AnyOf(self, other)  # type: ignore[arg-type]


class ConsecutiveFailures(_Composable):
    """Trip after ``threshold`` failures in a row (pybreaker's ``fail_max``).

    A :class:`~resilient.breaker.CircuitBreaker` skips :meth:`on_success` of this exact class
    while the count is zero: it would change nothing.
    """

    timed = False

    def __init__(self, threshold: int) -> None:
        self.threshold = check("ConsecutiveFailures.threshold", threshold, Integer(min=1))

    def on_success(self, state: TripState) -> None:
        if state.failures:
            state.reset_failures()

    def on_failure(self, state: TripState) -> bool:
        return state.add_failure() >= self.threshold

    def __repr__(self) -> str:
        return f"ConsecutiveFailures({self.threshold})"


class FailureRate(_Composable):
    """Trip when, over the window, at least ``minimum_calls`` calls were made and failures
    are at least ``threshold`` of them, or slow calls (longer than ``slow_call_duration``,
    failed or not) at least ``slow_call_threshold`` of them: Resilience4j's failure-rate and
    slow-call-rate thresholds, with its defaults (50%, 100% of calls slower than 60 s, the last
    100 calls, at least 100 of them).

    As in Resilience4j, ``minimum_calls`` is capped at a count window's size (a window of 10
    calls is judged at 10), a slow call is one strictly longer than ``slow_call_duration``, and
    a rate trips when it equals its threshold. ``slow_call_duration=math.inf`` turns slow calls
    off (and with them the breaker's clock reads). The counts live in this policy: give each
    breaker its own.
    """

    def __init__(
        self,
        threshold: float = DEFAULT_FAILURE_RATE_THRESHOLD,
        *,
        window: CountWindow | TimeWindow | None = None,
        minimum_calls: int = DEFAULT_MINIMUM_CALLS,
        slow_call_duration: float = DEFAULT_SLOW_CALL_DURATION,
        slow_call_threshold: float = DEFAULT_SLOW_CALL_RATE_THRESHOLD,
    ) -> None:
        self.threshold = check(
            "FailureRate.threshold", threshold, Number(min=0, min_open=True, max=1, unit="share")
        )
        self.window = check(
            "FailureRate.window",
            CountWindow() if window is None else window,
            Instance((CountWindow, TimeWindow), "a CountWindow or a TimeWindow"),
        )
        minimum = check("FailureRate.minimum_calls", minimum_calls, Integer(min=1))
        if isinstance(self.window, CountWindow):
            minimum = min(minimum, self.window.size)
        self.minimum_calls = minimum
        self.slow_call_duration = check(
            "FailureRate.slow_call_duration",
            slow_call_duration,
            Number(min=0, finite=False, unit="seconds"),
        )
        self.slow_call_threshold = check(
            "FailureRate.slow_call_threshold",
            slow_call_threshold,
            Number(min=0, min_open=True, max=1, unit="share"),
        )
        self.timed = isinstance(self.window, TimeWindow) or not math.isinf(slow_call_duration)
        self.counts: Counts = self.window.counts()
        self._epoch = 0
        self._state: TripState | None = None

    @property
    def memory_bytes(self) -> int:
        """Bytes the window's counts take (fixed when the policy is made)."""
        return self.counts.memory_bytes

    def on_success(self, state: TripState) -> bool:
        return self._record(state, failed=False)

    def on_failure(self, state: TripState) -> bool:
        return self._record(state, failed=True)

    def _record(self, state: TripState, *, failed: bool) -> bool:
        counts = self._counts_for(state)
        counts.record(state.now, failed, state.duration > self.slow_call_duration)
        calls = counts.calls
        if calls < self.minimum_calls:
            return False
        return (
            counts.failures / calls >= self.threshold
            or counts.slow / calls >= self.slow_call_threshold
        )

    def _counts_for(self, state: TripState) -> Counts:
        if state is not self._state:
            if self._state is not None:
                raise ArgumentValueError(
                    f"{self!r} already counts for another breaker: give each breaker its own"
                )
            self._state = state
            self._epoch = state.epoch
        elif state.epoch != self._epoch:
            self._epoch = state.epoch
            self.counts = self.window.counts()
        return self.counts

    def __repr__(self) -> str:
        return (
            f"FailureRate({self.threshold:g}, window={self.window!r}, "
            f"minimum_calls={self.minimum_calls}, slow_call_duration={self.slow_call_duration:g}, "
            f"slow_call_threshold={self.slow_call_threshold:g})"
        )


class AnyOf(_Composable):
    """Trip when any of ``policies`` would: each is told of every outcome (so each keeps its
    own count), in order. ``a | b`` makes one."""

    def __init__(self, *policies: TripPolicy) -> None:
        flat: list[TripPolicy] = []
        for policy in policies:
            flat.extend(policy.policies if isinstance(policy, AnyOf) else (policy,))
        self.policies: tuple[TripPolicy, ...] = tuple(flat)
        self.timed = any(getattr(policy, "timed", False) for policy in self.policies)

    def on_success(self, state: TripState) -> bool:
        tripped = False
        for policy in self.policies:
            tripped = bool(policy.on_success(state)) or tripped
        return tripped

    def on_failure(self, state: TripState) -> bool:
        tripped = False
        for policy in self.policies:
            tripped = policy.on_failure(state) or tripped
        return tripped

    def __repr__(self) -> str:
        return " | ".join(repr(policy) for policy in self.policies)
