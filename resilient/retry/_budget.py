"""A retry budget: retries at most a share of recent requests, plus a floor, over a sliding
window (Finagle's ``RetryBudget``, Envoy's retry budget).

A retry costs the dependency as much as a request; when the dependency fails every request,
retries multiply its load by the number of attempts, exactly when it can least take it. A
budget caps that: in any ``window`` it allows at most ``min_retries + ratio * requests``
retries, ``requests`` being the original requests recorded in that window. One budget is
meant to be shared by every client of one provider (every :class:`RetryPolicy` of it, and its
hedges and failovers), so the bound holds for the provider's whole traffic from the process.

- ``record_request()`` when an original request starts (not a retry);
- ``try_spend()`` before a retry, a hedge or a failover attempt: True (counted as spent) or
  False (counted as refused; do not send it);
- ``available``: retries ``try_spend`` would allow now; ``stats``: counters since it was made.

The window is counted in ``buckets`` slices (Finagle's ``WindowedAdder``): two 8-byte counts
per slice, so a budget holds 16 bytes a slice whatever the rate, never a timestamp per
request. It slides one slice at a time: a request counts for between ``(buckets - 1) /
buckets`` and all of the window. Time comes from the injected clock. Use a budget from one
event loop (it never awaits: each method is one step of that loop).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from resilient._validate import Instance, check
from resilient.clock import SYSTEM_CLOCK, Clock
from resilient.events import DEFAULT_EVENTS, Emitter, EventBus
from resilient.retry._events import BUDGET_EVENT_SOURCE, BudgetExhausted, BudgetReplenished
from resilient.retry._options import DEFAULT_RETRY_BUDGET_OPTIONS, RetryBudgetOptions

__all__ = ["RetryBudget", "RetryBudgetStats"]


@dataclass(frozen=True, slots=True)
class RetryBudgetStats:
    """What a :class:`RetryBudget` counted since it was made."""

    requests: int
    """Original requests recorded."""
    spent: int
    """Retries (hedges, failovers) allowed."""
    refused: int
    """Retries refused."""


class RetryBudget:
    """Retries at most ``min_retries + ratio * requests`` in any ``window`` (see the module
    docstring and :class:`~resilient.retry.RetryBudgetOptions`)."""

    __slots__ = (
        "_emit",
        "_floor",
        "_index",
        "_ratio",
        "_refused_run",
        "_requests",
        "_size",
        "_slot",
        "_slot_end",
        "_spent",
        "_total_refused",
        "_total_requests",
        "_total_spent",
        "_width",
        "_window_requests",
        "_window_spent",
        "options",
    )

    def __init__(
        self,
        options: RetryBudgetOptions = DEFAULT_RETRY_BUDGET_OPTIONS,
        *,
        clock: Clock = SYSTEM_CLOCK,
        events: EventBus = DEFAULT_EVENTS,
    ) -> None:
        check("RetryBudget.options", options, Instance(RetryBudgetOptions, "a RetryBudgetOptions"))
        check("RetryBudget.clock", clock, Instance(Clock, "a Clock"))
        check("RetryBudget.events", events, Instance(EventBus, "an EventBus"))
        self.options = options
        self._emit = Emitter(BUDGET_EVENT_SOURCE, events, clock)
        self._ratio = options.ratio
        self._floor = float(options.min_retries)
        self._size = options.buckets
        self._width = options.window / options.buckets
        self._requests = array("q", bytes(8 * self._size))
        self._spent = array("q", bytes(8 * self._size))
        self._window_requests = 0
        self._window_spent = 0
        self._total_requests = 0
        self._total_spent = 0
        self._total_refused = 0
        self._refused_run = 0
        """Refusals since the budget last allowed a retry: it is exhausted while this is > 0."""
        self._slot = int(clock.monotonic() // self._width)
        self._index = self._slot % self._size
        self._slot_end = (self._slot + 1) * self._width

    def record_request(self) -> None:
        """An original request started (not a retry): it allows ``ratio`` more retries for
        the next ``window``."""
        now = self._emit.clock.monotonic()
        if now >= self._slot_end:
            self._slide(now)
        self._requests[self._index] += 1
        self._window_requests += 1
        self._total_requests += 1

    def try_spend(self) -> bool:
        """True if one more retry (hedge, failover attempt) may go now, and it is counted;
        False if the budget refuses it, and the refusal is counted."""
        now = self._emit.clock.monotonic()
        if now >= self._slot_end:
            self._slide(now)
        if self._floor + self._ratio * self._window_requests - self._window_spent >= 1:
            self._spent[self._index] += 1
            self._window_spent += 1
            self._total_spent += 1
            if self._refused_run:
                self._emit(BudgetReplenished(refused=self._refused_run))
                self._refused_run = 0
            return True
        self._total_refused += 1
        self._refused_run += 1
        if self._refused_run == 1:
            self._emit(
                BudgetExhausted(
                    requests=self._window_requests,
                    spent=self._window_spent,
                    allowed=self._floor + self._ratio * self._window_requests,
                )
            )
        return False

    @property
    def available(self) -> float:
        """Retries the window allows beyond those spent in it (:meth:`try_spend` allows one
        when this is at least 1)."""
        now = self._emit.clock.monotonic()
        if now >= self._slot_end:
            self._slide(now)
        return max(0.0, self._floor + self._ratio * self._window_requests - self._window_spent)

    @property
    def stats(self) -> RetryBudgetStats:
        """Requests, retries spent and retries refused since the budget was made."""
        return RetryBudgetStats(self._total_requests, self._total_spent, self._total_refused)

    def _slide(self, now: float) -> None:
        """Move the window to the slice of ``now``: the slices it passed are forgotten."""
        slot = int(now // self._width)
        passed = slot - self._slot
        if passed <= 0:
            return
        size = self._size
        requests, spent = self._requests, self._spent
        if passed >= size:
            for index in range(size):
                requests[index] = spent[index] = 0
            self._window_requests = self._window_spent = 0
        else:
            for step in range(1, passed + 1):
                index = (self._slot + step) % size
                self._window_requests -= requests[index]
                self._window_spent -= spent[index]
                requests[index] = spent[index] = 0
        self._slot = slot
        self._index = slot % size
        self._slot_end = (slot + 1) * self._width

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self._ratio:g}, min_retries={self.options.min_retries}, "
            f"window={self.options.window:g}s, available={self.available:g})"
        )
