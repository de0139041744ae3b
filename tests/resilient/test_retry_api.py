"""The public surface of resilient.retry, written out: its names, and the signatures other
patterns code against (hedging and failover spend from the same RetryBudget)."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import resilient
import resilient.retry

NAMES = [
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


def test_the_public_names_as_written() -> None:
    assert resilient.retry.__all__ == NAMES
    for name in NAMES:
        assert getattr(resilient.retry, name) is not None, name
    assert set(NAMES) <= set(dir(resilient.retry))


def test_the_constants_as_written() -> None:
    retry = resilient.retry
    assert (retry.RETRY_EVENT_SOURCE, retry.BUDGET_EVENT_SOURCE) == ("retry", "retry.budget")
    assert (retry.RETRY_RETRYING, retry.RETRY_GAVE_UP) == ("retrying", "gave_up")
    assert (retry.BUDGET_EXHAUSTED, retry.BUDGET_REPLENISHED) == ("exhausted", "replenished")
    assert (retry.GAVE_UP_ATTEMPTS, retry.GAVE_UP_TIME, retry.GAVE_UP_BUDGET) == (
        "attempts",
        "time",
        "budget",
    )
    assert retry.Retrying.NAME == "retrying"
    assert retry.RetryGaveUp.NAME == "gave_up"
    assert retry.BudgetExhausted.NAME == "exhausted"
    assert retry.BudgetReplenished.NAME == "replenished"


def test_the_top_level_package_exports_the_pattern() -> None:
    for name in [
        "DEFAULT_RETRY_BUDGET_OPTIONS",
        "DEFAULT_RETRY_OPTIONS",
        "Deadline",
        "RetryBudget",
        "RetryBudgetOptions",
        "RetryBudgetStats",
        "RetryOptions",
        "RetryPolicy",
        "RetryStats",
    ]:
        assert name in resilient.__all__
        assert getattr(resilient, name) is getattr(resilient.retry, name)


def parameters(function: object) -> list[tuple[str, str, object]]:
    return [
        (p.name, p.kind.name, p.default)
        for p in inspect.signature(function).parameters.values()  # type: ignore[arg-type]
    ]


def test_the_signatures_others_code_against() -> None:
    retry = resilient.retry
    clock, events, empty = resilient.SYSTEM_CLOCK, resilient.DEFAULT_EVENTS, inspect.Parameter.empty
    assert parameters(retry.RetryBudget) == [
        ("options", "POSITIONAL_OR_KEYWORD", retry.DEFAULT_RETRY_BUDGET_OPTIONS),
        ("clock", "KEYWORD_ONLY", clock),
        ("events", "KEYWORD_ONLY", events),
    ]
    assert parameters(retry.RetryPolicy) == [
        ("name", "POSITIONAL_OR_KEYWORD", empty),
        ("options", "POSITIONAL_OR_KEYWORD", retry.DEFAULT_RETRY_OPTIONS),
        ("budget", "KEYWORD_ONLY", None),
        ("random", "KEYWORD_ONLY", None),
        ("clock", "KEYWORD_ONLY", clock),
        ("events", "KEYWORD_ONLY", events),
    ]
    budget = resilient.retry.RetryBudget
    assert str(inspect.signature(budget.record_request)) == "(self) -> 'None'"
    assert str(inspect.signature(budget.try_spend)) == "(self) -> 'bool'"
    assert isinstance(inspect.getattr_static(budget, "stats"), property)
    assert isinstance(inspect.getattr_static(budget, "available"), property)
    policy = resilient.retry.RetryPolicy
    assert str(inspect.signature(policy.call)) == (
        "(self, fn: 'Callable[P, Awaitable[T]]', /, *args: 'P.args', **kwargs: 'P.kwargs') -> 'T'"
    )
    assert inspect.iscoroutinefunction(policy.call)
    assert inspect.iscoroutinefunction(policy.call_with_deadline)


def test_the_policy_and_tenacity_load_on_first_use() -> None:
    program = (
        "import sys, resilient.retry\n"
        "assert 'tenacity' not in sys.modules and 'resilient.retry._policy' not in sys.modules\n"
        "resilient.retry.RetryPolicy\n"
        "assert 'tenacity' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", program], check=True, timeout=60)


def test_every_event_is_frozen_slotted_equal_to_its_items_and_of_its_severity() -> None:
    import dataclasses

    from resilient.events import Severity

    retry = resilient.retry
    made = {
        retry.Retrying(policy="p", attempt=1, error="E", delay=0.5, retry_after=None): "INFO",
        retry.RetryGaveUp(policy="p", reason="time", attempts=2, error="E", elapsed=1.0): (
            "WARNING"
        ),
        retry.BudgetExhausted(requests=5, spent=4, allowed=4.0): "WARNING",
        retry.BudgetReplenished(refused=3): "INFO",
    }
    for event, severity in made.items():
        assert type(event).SEVERITY is Severity[severity]
        assert event == dict(event.items())  # a mapping's equality, not only its own class's
        assert not hasattr(event, "__dict__")
        name = dataclasses.fields(event)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(event, name, getattr(event, name))
