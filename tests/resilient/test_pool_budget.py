"""fleet_budget: the worst a fleet of pools and gates can ask of a backend, and by how much it
exceeds what the backend takes."""

from __future__ import annotations

import math
from typing import Any

import pytest

from resilient.errors import ArgumentTypeError, ArgumentValueError
from resilient.pool import GateOptions, PoolOptions, fleet_budget
from resilient.ratelimit import Rate


def test_the_incidents_fleet_exceeds_the_backend_and_says_by_how_much() -> None:
    budget = fleet_budget(
        replicas=40,
        processes_per_replica=4,
        pools_per_process=2,
        pool=PoolOptions(max_size=10),
        gate=GateOptions(connect_rate=Rate(10, 1.0, burst=2)),
        backend_connections=2000,
        backend_accepts_per_second=1000,
    )
    assert budget.connections == 40 * 4 * 2 * 10 == 3200
    assert budget.connects_per_second == 1600
    assert budget.connects_at_once == 160 * 2  # burst 3, but max_connecting 2
    assert budget.connections_over == 1200
    assert budget.connects_over == 600
    assert not budget.fits
    assert budget.problems() == [
        "up to 3200 connections at once, the backend holds 2000: 1200 over",
        "up to 1600 connects/s, the backend accepts 1000/s: 600/s over",
    ]


def test_a_fleet_within_both_bounds_fits() -> None:
    budget = fleet_budget(
        replicas=4,
        backend_connections=40,
        backend_accepts_per_second=40,
        gate=GateOptions(connect_rate=Rate(10, 1.0)),
    )
    assert budget.connections == 40
    assert budget.connects_per_second == 40
    assert budget.connects_at_once == 4
    assert (budget.connections_over, budget.connects_over) == (0, 0)
    assert budget.fits
    assert budget.problems() == []


def test_a_rate_over_a_longer_period_counts_per_second() -> None:
    budget = fleet_budget(
        replicas=2,
        backend_connections=math.inf,
        backend_accepts_per_second=math.inf,
        gate=GateOptions(connect_rate=Rate(30, 60.0)),
    )
    assert budget.connects_per_second == 1.0
    assert budget.fits


def test_only_one_bound_exceeded_is_one_problem() -> None:
    budget = fleet_budget(replicas=2, backend_connections=10, backend_accepts_per_second=1e6)
    assert budget.problems() == ["up to 20 connections at once, the backend holds 10: 10 over"]
    assert not budget.fits  # one bound over is enough


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"replicas": 0}, r"fleet_budget\(replicas\)"),
        ({"replicas": True}, r"fleet_budget\(replicas\)"),
        ({"processes_per_replica": 2.5}, r"fleet_budget\(processes_per_replica\)"),
        ({"pools_per_process": -1}, r"fleet_budget\(pools_per_process\)"),
        ({"backend_connections": 0}, r"fleet_budget\(backend_connections\)"),
        ({"backend_accepts_per_second": math.nan}, r"fleet_budget\(backend_accepts_per_second\)"),
        ({"pool": {}}, r"fleet_budget\(pool\) must be a PoolOptions"),
        ({"gate": None}, r"fleet_budget\(gate\) must be a GateOptions"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "replicas": 1,
        "backend_connections": 10,
        "backend_accepts_per_second": 10,
        **kwargs,
    }
    with pytest.raises((ArgumentTypeError, ArgumentValueError), match=message):
        fleet_budget(**arguments)


def test_a_count_too_large_for_any_fleet_is_refused_not_overflowed() -> None:
    with pytest.raises(ArgumentValueError, match=r"fleet_budget\(replicas\)"):
        fleet_budget(replicas=10**400, backend_connections=10, backend_accepts_per_second=10)


@pytest.mark.parametrize(
    ("name", "accepted", "refused", "wants"),
    [
        ("replicas", [1, 10**9], 10**9 + 1, "an int >= 1 and <= 1000000000"),
        ("processes_per_replica", [1, 10**9], 0, "an int >= 1 and <= 1000000000"),
        ("pools_per_process", [1, 10**9], 10**9 + 1, "an int >= 1 and <= 1000000000"),
        ("backend_connections", [1e-9, 0.5, math.inf], 0, "a number of connections > 0"),
        (
            "backend_accepts_per_second",
            [1e-9, 0.5, math.inf],
            0,
            "a number of connects per second > 0",
        ),
    ],
)
def test_each_bound_is_where_it_is_written(
    name: str, accepted: list[object], refused: object, wants: str
) -> None:
    base: dict[str, Any] = {
        "replicas": 1,
        "backend_connections": 10,
        "backend_accepts_per_second": 10,
    }
    for value in accepted:
        fleet_budget(**{**base, name: value})
    with pytest.raises(ArgumentValueError) as raised:
        fleet_budget(**{**base, name: refused})
    assert str(raised.value) == f"fleet_budget({name}) must be {wants}, got {refused!r}"


def test_a_budget_is_a_frozen_slotted_value() -> None:
    import dataclasses

    budget = fleet_budget(replicas=1, backend_connections=10, backend_accepts_per_second=10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        budget.connections = 0  # type: ignore[misc]
    assert not hasattr(budget, "__dict__")
