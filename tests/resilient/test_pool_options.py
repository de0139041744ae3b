"""GateOptions and PoolOptions: the named defaults and the anchors they come from, each field's
bounds written out (not derived from its rule, which a test must catch changing), and the
fields that contradict each other."""

from __future__ import annotations

from typing import Any

import pytest

from resilient.errors import ArgumentTypeError, ArgumentValueError
from resilient.pool import (
    DEFAULT_GATE_OPTIONS,
    DEFAULT_POOL_OPTIONS,
    GATE_BREAKER_OPTIONS,
    GateOptions,
    PoolOptions,
)
from resilient.pool import _options as anchors
from resilient.ratelimit import Rate


def test_the_gate_defaults_are_the_documented_anchors() -> None:
    options = DEFAULT_GATE_OPTIONS
    assert options == GateOptions()
    assert options.connect_rate == Rate(10, 1.0, burst=2)
    assert options.max_connecting == 2  # MongoDB's maxConnecting
    assert options.connect_timeout == 20.0  # gRPC's MIN_CONNECT_TIMEOUT
    assert (options.backoff_initial, options.backoff_multiplier) == (1.0, 1.6)  # gRPC
    assert (options.backoff_jitter, options.backoff_max) == (0.2, 120.0)  # gRPC
    assert options.failures == (OSError,)
    assert options.churn_window == 5.0
    assert (anchors.DEFAULT_MAX_CONNECTING, anchors.DEFAULT_CONNECT_TIMEOUT) == (2, 20.0)
    assert (anchors.DEFAULT_BACKOFF_INITIAL, anchors.DEFAULT_BACKOFF_MULTIPLIER) == (1.0, 1.6)
    assert (anchors.DEFAULT_BACKOFF_JITTER, anchors.DEFAULT_BACKOFF_MAX) == (0.2, 120.0)
    assert (GATE_BREAKER_OPTIONS.failure_threshold, GATE_BREAKER_OPTIONS.reset_timeout) == (
        5,
        30.0,
    )


def test_the_pool_defaults_are_the_documented_anchors() -> None:
    options = DEFAULT_POOL_OPTIONS
    assert options == PoolOptions()
    assert (options.max_size, options.min_size, options.warm_jitter) == (10, 0, 1.0)  # HikariCP
    assert (options.acquire_timeout, options.max_waiting) == (30.0, 100)
    assert (options.idle_timeout, options.max_lifetime, options.lifetime_jitter) == (
        600.0,
        1800.0,
        0.1,
    )
    assert (options.check_after_idle, options.housekeeping, options.rebuild_step) == (
        0.5,
        30.0,
        1,
    )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: GateOptions(backoff_initial=2.0, backoff_max=1.5),
            "GateOptions.backoff_initial must be <= backoff_max (1.5), got 2.0",
        ),
        (
            lambda: PoolOptions(min_size=3, max_size=2),
            "PoolOptions.min_size must be <= max_size (2), got 3",
        ),
    ],
)
def test_fields_that_contradict_each_other_are_refused_in_exact_words(
    build: Any, message: str
) -> None:
    with pytest.raises(ArgumentValueError) as raised:
        build()
    assert str(raised.value) == message


def test_fields_at_each_others_bounds_are_accepted() -> None:
    assert GateOptions(backoff_initial=1.5, backoff_max=1.5).backoff_max == 1.5
    assert PoolOptions(min_size=2, max_size=2).min_size == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"connect_rate": (10, 1.0)}, "GateOptions.connect_rate must be a Rate, got (10, 1.0)"),
        (
            {"failures": (OSError, ValueError())},
            "GateOptions.failures must be a tuple of exception types, got (<class 'OSError'>, "
            "ValueError())",
        ),
        ({"failures": (int,)}, "GateOptions.failures must be a tuple of exception types"),
    ],
)
def test_the_gate_names_what_it_takes(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ArgumentTypeError) as raised:
        GateOptions(**kwargs)
    assert str(raised.value).startswith(message)
