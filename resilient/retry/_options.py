"""Every option of a :class:`~resilient.retry.RetryBudget` and a
:class:`~resilient.retry.RetryPolicy`, with its default and where the default comes from.

The anchors (issue 12): Finagle's retry budget (20% of requests on top of a floor, deposits
expiring after 10 s, counted in 10 slices of the window); Envoy's retry budget
(``budget_percent`` 20%, ``min_retry_concurrency`` 3); the AWS SDKs' full-jitter exponential
backoff ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015) and their 3 attempts;
the OpenAI and Anthropic Python SDKs (2 retries, waits from 0.5 s up to 8 s, ``Retry-After``
honoured); stamina (45 s for every attempt and wait of one call).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from resilient._validate import Integer, Number, TupleOf, check_fields, option
from resilient.errors import ArgumentValueError
from resilient.retry._faults import transient_error

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_BACKOFF_INITIAL",
    "DEFAULT_BACKOFF_MAX",
    "DEFAULT_BACKOFF_MULTIPLIER",
    "DEFAULT_BUDGET_BUCKETS",
    "DEFAULT_BUDGET_RATIO",
    "DEFAULT_BUDGET_WINDOW",
    "DEFAULT_JITTER",
    "DEFAULT_MIN_RETRIES",
    "DEFAULT_RETRY_BUDGET_OPTIONS",
    "DEFAULT_RETRY_OPTIONS",
    "DEFAULT_TIMEOUT",
    "RetryBudgetOptions",
    "RetryOptions",
    "Retryable",
]

# -- the budget ------------------------------------------------------------------------------

DEFAULT_BUDGET_RATIO = 0.2
"""Retries allowed per original request in the window, on top of the floor: Finagle's
``percentCanRetry`` (0.2) and Envoy's ``budget_percent`` (20%). Under a dependency that fails
every request, a client then sends at most 1.2 attempts per request (plus the floor), the
issue's bound for the guarded arm."""

DEFAULT_BUDGET_WINDOW = 10.0
"""Seconds a request (and a retry) counts in the budget: Finagle's ``ttl`` (10 s). Long enough
that a burst of failures is judged against the traffic before it, short enough that a budget
spent in an outage is whole again seconds after the dependency recovers."""

DEFAULT_MIN_RETRIES = 3
"""Retries allowed in any window whatever the traffic: Envoy's ``min_retry_concurrency`` (3),
counted per window since this budget counts in a window. Finagle's floor is 10 retries a
second (100 per window): at the few requests a second an AI provider's client sends, that
would let every request retry several times, and the budget would not bind in the outage it
is for; 3 lets a quiet client retry a transient error and still bounds a fleet."""

DEFAULT_BUDGET_BUCKETS = 10
"""Slices of the window: Finagle's ``WindowedAdder`` keeps 10. The window slides one slice at a
time: a request counts for between 9 and 10 tenths of the window."""

MAX_MIN_RETRIES = 10**9
"""The largest floor: past it a floor is no budget, and it must stay exact as a float."""

MAX_BUDGET_BUCKETS = 1000
"""The most slices: 1,000 slices cost 16 KB (two 8-byte counts each)."""


@dataclass(frozen=True, slots=True)
class RetryBudgetOptions:
    """How many retries a :class:`~resilient.retry.RetryBudget` allows: at most
    ``min_retries + ratio * requests`` in any ``window``, ``requests`` being the original
    requests recorded in it."""

    ratio: float = option(DEFAULT_BUDGET_RATIO, Number(min=0, max=1000, unit="retries"))
    """Retries allowed per original request in the window (Finagle and tower allow up to
    1000). See :data:`DEFAULT_BUDGET_RATIO`; 0 leaves only the floor."""
    min_retries: int = option(DEFAULT_MIN_RETRIES, Integer(min=0, max=MAX_MIN_RETRIES))
    """Retries allowed in any window on top of the ratio. See :data:`DEFAULT_MIN_RETRIES`."""
    window: float = option(DEFAULT_BUDGET_WINDOW, Number(min=1, max=60, unit="seconds"))
    """Seconds a request and a retry count for (Finagle and tower bound it to 1 to 60 s). See
    :data:`DEFAULT_BUDGET_WINDOW`."""
    buckets: int = option(DEFAULT_BUDGET_BUCKETS, Integer(min=1, max=MAX_BUDGET_BUCKETS))
    """Slices the window is counted in: the memory of a budget is 16 bytes a slice, whatever
    the rate of requests. See :data:`DEFAULT_BUDGET_BUCKETS`."""

    def __post_init__(self) -> None:
        check_fields(self)


DEFAULT_RETRY_BUDGET_OPTIONS = RetryBudgetOptions()
"""20% of the requests of the last 10 s, plus 3, counted in 10 slices of a second."""

# -- the policy ------------------------------------------------------------------------------

DEFAULT_ATTEMPTS = 3
"""Attempts per call, the first included: the AWS SDKs' standard mode (3), and the OpenAI and
Anthropic SDKs' 2 retries."""

DEFAULT_TIMEOUT = 45.0
"""Seconds from the start of a call after which no attempt starts and no wait goes on:
stamina's ``timeout`` (45 s)."""

DEFAULT_BACKOFF_INITIAL = 0.5
"""The longest wait before the first retry: the OpenAI and Anthropic SDKs'
``INITIAL_RETRY_DELAY`` (0.5 s)."""

DEFAULT_BACKOFF_MULTIPLIER = 2.0
"""Growth of the longest wait with each retry: AWS's exponential backoff (``base * 2 **
attempt``)."""

DEFAULT_BACKOFF_MAX = 8.0
"""The longest wait: the OpenAI and Anthropic SDKs' ``MAX_RETRY_DELAY`` (8 s)."""

DEFAULT_JITTER = 1.0
"""Each wait is drawn uniformly between 0 and its nominal value: AWS's "full jitter", which
spreads the retries of clients that failed together the most of the schemes that blog
measured."""

Retryable = type[Exception] | Callable[[Exception], bool]
"""An exception type, or a predicate on the exception, whose errors are retried."""


def _is_retryable(entry: object) -> bool:
    if isinstance(entry, type):
        return issubclass(entry, Exception)
    return callable(entry)


@dataclass(frozen=True, slots=True)
class RetryOptions:
    """When a :class:`~resilient.retry.RetryPolicy` tries again, and how long it waits.

    The wait before retry ``n`` (1 for the first) is ``nominal * (1 - jitter * U)``, ``U``
    uniform in [0, 1), where ``nominal = min(backoff_max, backoff_initial * backoff_multiplier
    ** (n - 1))``; a ``Retry-After`` the error carries makes it at least that long.
    """

    attempts: int = option(DEFAULT_ATTEMPTS, Integer(min=1))
    """Attempts per call, the first included; 1 never retries. See :data:`DEFAULT_ATTEMPTS`."""
    timeout: float = option(
        DEFAULT_TIMEOUT, Number(min=0, min_open=True, finite=False, unit="seconds")
    )
    """Seconds from the call's start: no attempt starts after it, and a wait that would end
    past it is not begun (the call gives up at once with the last error). Each attempt is
    given this deadline (:meth:`~resilient.retry.RetryPolicy.call_with_deadline`); the policy
    does not cancel an attempt that runs past it. Infinite: no cap. See
    :data:`DEFAULT_TIMEOUT`."""
    backoff_initial: float = option(DEFAULT_BACKOFF_INITIAL, Number(min=0, unit="seconds"))
    """The nominal wait before the first retry. See :data:`DEFAULT_BACKOFF_INITIAL`."""
    backoff_multiplier: float = option(DEFAULT_BACKOFF_MULTIPLIER, Number(min=1, unit="times"))
    """Growth of the nominal wait per retry. See :data:`DEFAULT_BACKOFF_MULTIPLIER`."""
    backoff_max: float = option(DEFAULT_BACKOFF_MAX, Number(min=0, unit="seconds"))
    """The longest nominal wait. See :data:`DEFAULT_BACKOFF_MAX`."""
    jitter: float = option(DEFAULT_JITTER, Number(min=0, max=1, unit="share"))
    """The share of each wait drawn at random. See :data:`DEFAULT_JITTER`; 0 makes every wait
    its nominal value (tests)."""
    retry_on: tuple[Retryable, ...] = option(
        (transient_error,),
        TupleOf(_is_retryable, "a tuple of Exception types or predicates"),
    )
    """Which errors of an attempt are retried: an error that is an instance of a type listed,
    or for which a predicate listed returns True. Never an
    :class:`~resilient.errors.ArgumentError` (the caller's mistake, whatever is listed), never
    a cancellation (only ``Exception`` types may be listed). The default,
    :func:`~resilient.retry.transient_error`, retries the dependency's faults only."""

    def __post_init__(self) -> None:
        check_fields(self)
        if self.backoff_initial > self.backoff_max:
            raise ArgumentValueError(
                f"RetryOptions.backoff_initial must be <= backoff_max ({self.backoff_max:g}), "
                f"got {self.backoff_initial!r}"
            )


DEFAULT_RETRY_OPTIONS = RetryOptions()
"""3 attempts within 45 s, full-jitter waits of at most 0.5 s, 1 s, ... up to 8 s, on the
dependency's transient faults."""
