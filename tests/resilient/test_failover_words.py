"""Failover in exact words and exact numbers: every default as documented, every refusal naming
its field and its bounds (each bound itself accepted), and every event's name, severity and
attributes in order (mutation survivors of failover/_options and failover/_events).

Every test runs in virtual time.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from resilient.breaker import BreakerOptions
from resilient.errors import ArgumentTypeError, ArgumentValueError
from resilient.events import Severity
from resilient.failover import (
    DEFAULT_FAILOVER_OPTIONS,
    DEFAULT_HEDGE_QUANTILE,
    DEFAULT_SLOW_START_WINDOW,
    DEFAULT_TIMEOUT,
    FAILOVER_EVENT_SOURCE,
    FAILOVER_FAILED_OVER,
    FAILOVER_FALLBACK,
    FAILOVER_HEDGED,
    FAILOVER_RECOVERING,
    PROVIDER_BREAKER_OPTIONS,
    FailedOver,
    Failover,
    FailoverOptions,
    FallbackUsed,
    Hedged,
    Provider,
    ProviderRecovering,
)


def test_the_defaults_are_the_documented_numbers() -> None:
    assert (DEFAULT_TIMEOUT, DEFAULT_HEDGE_QUANTILE, DEFAULT_SLOW_START_WINDOW) == (
        10.0,
        0.95,
        30.0,
    )
    assert FailoverOptions() == DEFAULT_FAILOVER_OPTIONS
    assert dataclasses.asdict(DEFAULT_FAILOVER_OPTIONS) == {
        "timeout": 10.0,
        "hedge": True,
        "hedge_quantile": 0.95,
        "hedge_min_delay": 0.005,
        "latency_samples": 256,
        "health_weight": 0.1,
        "min_health": 0.5,
        "slow_start_window": 30.0,
        "slow_start_min_share": 0.1,
        "failures": (OSError,),
    }
    assert BreakerOptions(failure_threshold=5, reset_timeout=5.0) == PROVIDER_BREAKER_OPTIONS


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (
            {"timeout": 0},
            ArgumentValueError,
            "FailoverOptions.timeout must be a finite number of seconds > 0, got 0",
        ),
        (
            {"hedge": "yes"},
            ArgumentTypeError,
            "FailoverOptions.hedge must be a bool, got 'yes'",
        ),
        (
            {"hedge_quantile": 0},
            ArgumentValueError,
            "FailoverOptions.hedge_quantile must be a finite number of quantile > 0 and <= 1,"
            " got 0",
        ),
        (
            {"hedge_quantile": 1.5},
            ArgumentValueError,
            "FailoverOptions.hedge_quantile must be a finite number of quantile > 0 and <= 1,"
            " got 1.5",
        ),
        (
            {"hedge_min_delay": -1},
            ArgumentValueError,
            "FailoverOptions.hedge_min_delay must be a finite number of seconds >= 0, got -1",
        ),
        (
            {"latency_samples": 7},
            ArgumentValueError,
            "FailoverOptions.latency_samples must be an int >= 8 and <= 100000, got 7",
        ),
        (
            {"latency_samples": 100_001},
            ArgumentValueError,
            "FailoverOptions.latency_samples must be an int >= 8 and <= 100000, got 100001",
        ),
        (
            {"health_weight": 0},
            ArgumentValueError,
            "FailoverOptions.health_weight must be a finite number of weight > 0 and <= 1, got 0",
        ),
        (
            {"min_health": 1.5},
            ArgumentValueError,
            "FailoverOptions.min_health must be a finite number of share >= 0 and <= 1, got 1.5",
        ),
        (
            {"min_health": -0.1},
            ArgumentValueError,
            "FailoverOptions.min_health must be a finite number of share >= 0 and <= 1, got -0.1",
        ),
        (
            {"slow_start_window": -1},
            ArgumentValueError,
            "FailoverOptions.slow_start_window must be a finite number of seconds >= 0, got -1",
        ),
        (
            {"slow_start_min_share": 2},
            ArgumentValueError,
            "FailoverOptions.slow_start_min_share must be a finite number of share >= 0 and <= 1,"
            " got 2",
        ),
        (
            {"failures": (int,)},
            ArgumentTypeError,
            "FailoverOptions.failures must be a tuple of exception types, got (<class 'int'>,)",
        ),
        (
            {"failures": [OSError]},
            ArgumentTypeError,
            "FailoverOptions.failures must be a tuple of exception types, got [<class 'OSError'>]",
        ),
    ],
)
def test_a_bad_option_is_refused_naming_its_field_and_bounds(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as refused:
        FailoverOptions(**options)
    assert str(refused.value) == message


def test_every_bound_itself_is_accepted() -> None:
    lowest = FailoverOptions(
        hedge_min_delay=0,
        latency_samples=8,
        min_health=0,
        slow_start_window=0,
        slow_start_min_share=0,
        failures=(BaseException,),
    )
    assert (lowest.latency_samples, lowest.min_health, lowest.slow_start_window) == (8, 0, 0)
    highest = FailoverOptions(
        hedge_quantile=1,
        latency_samples=100_000,
        health_weight=1,
        min_health=1,
        slow_start_min_share=1,
        failures=(),
    )
    assert (highest.hedge_quantile, highest.latency_samples, highest.health_weight) == (
        1,
        100_000,
        1,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        highest.timeout = 1.0  # type: ignore[misc]
    assert not hasattr(highest, "__dict__")


def test_the_event_names_are_the_documented_words() -> None:
    assert (
        FAILOVER_EVENT_SOURCE,
        FAILOVER_FAILED_OVER,
        FAILOVER_HEDGED,
        FAILOVER_FALLBACK,
        FAILOVER_RECOVERING,
    ) == ("failover", "failed_over", "hedged", "fallback", "recovering")


@pytest.mark.parametrize(
    ("event", "name", "severity", "attributes"),
    [
        (
            FailedOver("f", "one", "two", "OSError: down"),
            "failed_over",
            Severity.INFO,
            {"failover": "f", "failed": "one", "to": "two", "error": "OSError: down"},
        ),
        (
            Hedged("f", "one", "two", 0.25),
            "hedged",
            Severity.DEBUG,
            {"failover": "f", "primary": "one", "hedge": "two", "delay": 0.25},
        ),
        (
            FallbackUsed("f", "the deadline passed"),
            "fallback",
            Severity.WARNING,
            {"failover": "f", "reason": "the deadline passed"},
        ),
        (
            ProviderRecovering("f", "one", 30.0),
            "recovering",
            Severity.INFO,
            {"failover": "f", "provider": "one", "window": 30.0},
        ),
    ],
)
def test_each_event_has_its_name_severity_and_attributes_in_order(
    event: FailedOver, name: str, severity: Severity, attributes: dict[str, object]
) -> None:
    assert name == event.NAME
    assert severity is event.SEVERITY
    assert list(event) == list(attributes)  # declaration order: the order a log line shows
    assert event == attributes  # a mapping: equal to a plain dict of the same items
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.failover = "other"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")


async def answer(request: str) -> str:
    return request


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (
            lambda p: Failover([]),
            ArgumentTypeError,
            "Failover.providers must be a non-empty sequence of Provider",
        ),
        (
            lambda p: Failover("ab"),
            ArgumentTypeError,
            "Failover.providers must be a non-empty sequence of Provider",
        ),
        (
            lambda p: Failover([p, p]),
            ArgumentValueError,
            "Failover.providers must have distinct names, got ['one', 'one']",
        ),
        (
            lambda p: Failover([3]),
            ArgumentTypeError,
            "Failover.providers[] must be a Provider, got 3",
        ),
        (
            lambda p: Failover([p], 3),
            ArgumentTypeError,
            "Failover.options must be a FailoverOptions, got 3",
        ),
        (
            lambda p: Failover([p], budget=3),
            ArgumentTypeError,
            "Failover.budget must be an AttemptBudget or None, got 3",
        ),
        (
            lambda p: Failover([p], fallback=3),
            ArgumentTypeError,
            "Failover.fallback must be callable, got 3",
        ),
        (
            lambda p: Failover([p], name=""),
            ArgumentValueError,
            "Failover.name must be a non-empty str, got ''",
        ),
        (
            lambda p: Failover([p], clock=3),
            ArgumentTypeError,
            "Failover.clock must be a Clock, got 3",
        ),
        (
            lambda p: Failover([p], events=3),
            ArgumentTypeError,
            "Failover.events must be an EventBus, got 3",
        ),
        (
            lambda p: Failover([p], random=3),
            ArgumentTypeError,
            "Failover.random must be a random.Random, got 3",
        ),
        (
            lambda p: Provider("", answer),
            ArgumentValueError,
            "Provider.name must be a non-empty str, got ''",
        ),
        (lambda p: Provider("x", 3), ArgumentTypeError, "Provider.call must be callable, got 3"),
        (
            lambda p: Provider("x", answer, breaker=3),
            ArgumentTypeError,
            "Provider.breaker must be a CircuitBreaker, got 3",
        ),
        (
            lambda p: Provider("x", answer, rate=3),
            ArgumentTypeError,
            "Provider.rate must be a Rate or None, got 3",
        ),
    ],
)
def test_a_bad_argument_is_refused_in_exact_words(
    build: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as refused:
        build(Provider("one", answer))
    assert str(refused.value) == message


async def test_the_providers_get_their_own_breakers_named_after_the_failover() -> None:
    from resilient.breaker import BreakerState
    from resilient.clock import VirtualClock

    failover = Failover(
        [Provider("one", answer), Provider("two", answer)], name="search", clock=VirtualClock()
    )
    assert [lane.breaker.name for lane in failover.lanes] == ["search/one", "search/two"]
    assert all(lane.breaker.options == PROVIDER_BREAKER_OPTIONS for lane in failover.lanes)
    assert all(lane.breaker.state is BreakerState.CLOSED for lane in failover.lanes)
    assert failover.name == "search"
    assert Failover([Provider("one", answer)]).name == "failover"  # the default name


async def test_a_bad_timeout_of_a_call_is_refused_in_exact_words() -> None:
    failover = Failover([Provider("one", answer)])
    with pytest.raises(ArgumentValueError) as refused:
        await failover.call("r", timeout=0)
    assert (
        str(refused.value) == "Failover.call(timeout) must be a finite number of seconds > 0, got 0"
    )


async def test_a_result_is_a_frozen_slotted_value() -> None:
    from resilient.clock import VirtualClock

    failover = Failover([Provider("one", answer)], clock=VirtualClock())
    result = await failover.call("r")
    assert (result.value, result.provider, result.degraded, result.attempts, result.hedged) == (
        "r",
        "one",
        False,
        1,
        False,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.value = "changed"  # type: ignore[misc]
    assert not hasattr(result, "__dict__")


def test_a_provider_its_stats_and_its_lane_are_slotted_values() -> None:
    from resilient.failover import ProviderStats

    provider = Provider("one", answer)
    with pytest.raises(dataclasses.FrozenInstanceError):
        provider.name = "two"  # type: ignore[misc]
    assert not hasattr(provider, "__dict__")
    stats = ProviderStats()
    assert stats == ProviderStats(0, 0, 0, 0, 0, 0, 0, 0)
    assert repr(stats) == (
        "ProviderStats(attempts=0, successes=0, failures=0, hedges=0, hedges_won=0, "
        "cancelled=0, rate_limited=0, passed_over=0)"
    )
    assert not hasattr(stats, "__dict__")
    lane = Failover([provider]).lanes[0]
    assert not hasattr(lane, "__dict__")  # a fixed memory per provider
