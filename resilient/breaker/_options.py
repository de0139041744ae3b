"""Every option of a :class:`~resilient.breaker.CircuitBreaker`, with its default."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from resilient._validate import Integer, Number, TupleOf, check_fields, option

__all__ = ["DEFAULT_BREAKER_OPTIONS", "BreakerOptions", "Exclusion"]

Exclusion = type[BaseException] | Callable[[BaseException], bool]
"""An exception type, or a predicate on the exception, that does not count as a failure."""


@dataclass(frozen=True, slots=True)
class BreakerOptions:
    """How a :class:`~resilient.breaker.CircuitBreaker` trips and recovers."""

    failure_threshold: int = option(5, Integer(min=1))
    """Consecutive failures (while closed) that open the circuit."""
    reset_timeout: float = option(30.0, Number(min=0, unit="seconds"))
    """Seconds, on the breaker's clock, the circuit stays open before it lets probes through."""
    half_open_max_calls: int = option(1, Integer(min=1))
    """Probes allowed at once while half-open; one success closes the circuit, one failure
    opens it again. Other callers are rejected at once."""
    exclude: tuple[Exclusion, ...] = option(
        (), TupleOf(callable, "a tuple of exception types or predicates")
    )
    """Exception types, or predicates on the exception, that are not failures (they count as
    successes: the dependency answered, the answer was a business error)."""

    def __post_init__(self) -> None:
        check_fields(self)


DEFAULT_BREAKER_OPTIONS = BreakerOptions()
"""Trip after 5 consecutive failures, probe after 30 s, one probe at a time, exclude nothing."""
