"""The rollout's value types are what they say: the frozen ones cannot change once made (a
``Served`` is shared by every request of a side), and every one is slotted (no stray attribute,
no per-instance dict: samples and statuses stay small)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from resilient.rollout import (
    CohortSamples,
    ConfigVersion,
    GateResult,
    LogEntry,
    MetricGate,
    Problem,
    RolloutOptions,
    RolloutStatus,
    Served,
    ShadowReport,
    Stage,
    SuccessRatioGate,
    Verdict,
)
from resilient.rollout._plan import Plan

FROZEN: list[tuple[Any, str]] = [
    (Served(1, {}, False, 1), "version"),
    (GateResult("g", Verdict.PASS, "ok"), "verdict"),
    (SuccessRatioGate(), "alpha"),
    (MetricGate(), "metric"),
    (Stage(percent=5), "bake"),
    (RolloutOptions(), "failure_limit"),
    (Plan(1, 1, 0, "running", 5.0, (), "s"), "stage"),
    (ConfigVersion(1, b""), "data"),
    (LogEntry(0.0, "a", None, "r"), "reason"),
    (Problem("f", "r", "m"), "field"),
]

MUTABLE: list[tuple[Any, str]] = [
    (CohortSamples(1), "total"),
    (RolloutStatus(), "evaluations"),
    (ShadowReport(), "changed"),
]


@pytest.mark.parametrize(("value", "field"), FROZEN, ids=[type(v).__name__ for v, _ in FROZEN])
def test_a_frozen_value_cannot_change_and_has_no_dict(value: Any, field: str) -> None:
    before = getattr(value, field)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, field, 3)
    assert getattr(value, field) == before
    assert not hasattr(value, "__dict__")


@pytest.mark.parametrize(("value", "field"), MUTABLE, ids=[type(v).__name__ for v, _ in MUTABLE])
def test_a_counting_value_is_slotted(value: Any, field: str) -> None:
    setattr(value, field, 3)
    assert getattr(value, field) == 3
    assert not hasattr(value, "__dict__")
    with pytest.raises(AttributeError):
        value.stray = 1


def test_equal_values_are_equal_and_frozen_ones_hash_alike() -> None:
    assert Served(1, "c", True, 2) == Served(1, "c", True, 2)
    assert hash(Plan(1, 1, 0, "running", 5.0, (), "s")) == hash(
        Plan(1, 1, 0, "running", 5.0, (), "s")
    )
    assert len({Stage(percent=5), Stage(percent=5.0)}) == 1
    assert CohortSamples(1) == CohortSamples(1)
