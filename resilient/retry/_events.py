"""Every event a :class:`~resilient.retry.RetryPolicy` (source ``"retry"``) and a
:class:`~resilient.retry.RetryBudget` (source ``"retry.budget"``) emit.

The policy: ``retrying`` (an attempt failed with a retryable error; the next one starts after
``delay``) and ``gave_up`` (a retryable error ended the call: ``reason`` says whether the
attempts, the time or the budget ran out). An error that is not retried ends the call with no
event: the policy had nothing to decide. The budget: ``exhausted`` (it refused a retry after
it last allowed one: one event per stretch of refusals, however many callers it refuses) and
``replenished`` (it allows retries again, with how many it refused meanwhile).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

from resilient.events import EventAttributes, Severity

__all__ = [
    "BUDGET_EVENT_SOURCE",
    "BUDGET_EXHAUSTED",
    "BUDGET_REPLENISHED",
    "GAVE_UP_ATTEMPTS",
    "GAVE_UP_BUDGET",
    "GAVE_UP_TIME",
    "RETRY_EVENT_SOURCE",
    "RETRY_GAVE_UP",
    "RETRY_RETRYING",
    "BudgetExhausted",
    "BudgetReplenished",
    "RetryGaveUp",
    "Retrying",
]

RETRY_EVENT_SOURCE = "retry"
"""The ``source`` of every retry policy event."""
BUDGET_EVENT_SOURCE = "retry.budget"
"""The ``source`` of every retry budget event."""

RETRY_RETRYING = "retrying"
RETRY_GAVE_UP = "gave_up"
BUDGET_EXHAUSTED = "exhausted"
BUDGET_REPLENISHED = "replenished"

GAVE_UP_ATTEMPTS: Final = "attempts"
"""``RetryOptions.attempts`` were made."""
GAVE_UP_TIME: Final = "time"
"""The next attempt could not start before the call's deadline (``RetryOptions.timeout``)."""
GAVE_UP_BUDGET: Final = "budget"
"""The retry budget refused the retry."""


@dataclass(frozen=True, slots=True, eq=False)
class Retrying(EventAttributes):
    """Attempt ``attempt`` failed with a retryable error; attempt ``attempt + 1`` starts after
    ``delay`` seconds (INFO)."""

    NAME: ClassVar[str] = RETRY_RETRYING

    policy: str
    """The policy's name."""
    attempt: int
    """The attempt that failed (1 for the first)."""
    error: str
    delay: float
    """Seconds before the next attempt (its backoff, or the ``Retry-After``, if longer)."""
    retry_after: float | None
    """Seconds the error asked to wait (``Retry-After``), None when it said nothing."""


@dataclass(frozen=True, slots=True, eq=False)
class RetryGaveUp(EventAttributes):
    """A retryable error ended the call: it is raised to the caller (WARNING)."""

    NAME: ClassVar[str] = RETRY_GAVE_UP
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    policy: str
    reason: str
    """``"attempts"``, ``"time"`` or ``"budget"``: what ran out."""
    attempts: int
    """Attempts made."""
    error: str
    """The last attempt's error, the one raised."""
    elapsed: float
    """Seconds since the call started."""


@dataclass(frozen=True, slots=True, eq=False)
class BudgetExhausted(EventAttributes):
    """The budget refused a retry, and every retry until it emits ``replenished`` (WARNING)."""

    NAME: ClassVar[str] = BUDGET_EXHAUSTED
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    requests: int
    """Original requests in the window."""
    spent: int
    """Retries in the window."""
    allowed: float
    """Retries the window allows (``min_retries + ratio * requests``)."""


@dataclass(frozen=True, slots=True, eq=False)
class BudgetReplenished(EventAttributes):
    """The budget allowed a retry again after refusing some (INFO)."""

    NAME: ClassVar[str] = BUDGET_REPLENISHED

    refused: int
    """Retries refused since it was exhausted."""
