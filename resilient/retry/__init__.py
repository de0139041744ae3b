"""Retries with a budget (the 2026-04-20 outage: clients that do not hammer a provider that
is down, nor when it comes back).

A :class:`RetryPolicy` calls a dependency and retries its transient faults on tenacity, with
AWS's full-jitter exponential backoff, caps on attempts and on total time, ``Retry-After``
honoured, and a :class:`Deadline` given to every attempt; its success path does no retry
machinery at all. A :class:`RetryBudget` allows retries of at most a share of recent requests
plus a floor, over a sliding window; one budget is shared by every client of a provider (and
by its hedges and failovers).

- the policy: ``_policy.py``; the budget: ``_budget.py``;
- every option and its default (with where the default comes from): ``_options.py``;
- which errors are retried, and ``Retry-After``: ``_faults.py``;
- every event: ``_events.py``. No error of its own: a policy that gives up raises the
  dependency's last error, as it was.

The options, events and the budget import nothing heavy; the policy (and tenacity) is
imported when first used.
"""

from typing import TYPE_CHECKING

from resilient._lazy import lazy_exports
from resilient.retry._budget import RetryBudget, RetryBudgetStats
from resilient.retry._events import (
    BUDGET_EVENT_SOURCE,
    BUDGET_EXHAUSTED,
    BUDGET_REPLENISHED,
    GAVE_UP_ATTEMPTS,
    GAVE_UP_BUDGET,
    GAVE_UP_TIME,
    RETRY_EVENT_SOURCE,
    RETRY_GAVE_UP,
    RETRY_RETRYING,
    BudgetExhausted,
    BudgetReplenished,
    RetryGaveUp,
    Retrying,
)
from resilient.retry._faults import RETRYABLE_STATUSES, retry_after_of, transient_error
from resilient.retry._options import (
    DEFAULT_RETRY_BUDGET_OPTIONS,
    DEFAULT_RETRY_OPTIONS,
    Retryable,
    RetryBudgetOptions,
    RetryOptions,
)

if TYPE_CHECKING:
    from resilient.retry._policy import Deadline, RetryPolicy, RetryStats

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {"resilient.retry._policy": ["Deadline", "RetryPolicy", "RetryStats"]},
)

__all__ = [
    "BUDGET_EVENT_SOURCE",
    "BUDGET_EXHAUSTED",
    "BUDGET_REPLENISHED",
    "DEFAULT_RETRY_BUDGET_OPTIONS",
    "DEFAULT_RETRY_OPTIONS",
    "GAVE_UP_ATTEMPTS",
    "GAVE_UP_BUDGET",
    "GAVE_UP_TIME",
    "RETRYABLE_STATUSES",
    "RETRY_EVENT_SOURCE",
    "RETRY_GAVE_UP",
    "RETRY_RETRYING",
    "BudgetExhausted",
    "BudgetReplenished",
    "Deadline",
    "RetryBudget",
    "RetryBudgetOptions",
    "RetryBudgetStats",
    "RetryGaveUp",
    "RetryOptions",
    "RetryPolicy",
    "RetryStats",
    "Retryable",
    "Retrying",
    "retry_after_of",
    "transient_error",
]
