"""The rollout's value types are what they say: the frozen ones cannot change once made (a
``Served`` is shared by every request of a side), and every one is slotted (no stray attribute,
no per-instance dict: samples and statuses stay small)."""

from __future__ import annotations

import dataclasses
import typing
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


async def test_every_served_carries_an_int_epoch_as_its_type_says() -> None:
    from tests.resilient.rollout_world import BAD, opened

    rollout, _, _, _ = await opened()
    before = rollout.config_for("k")
    assert type(before.epoch) is int
    await rollout.start(BAD, "x")
    during = rollout.config_for("k")
    assert type(during.epoch) is int
    assert during.epoch != before.epoch


def test_shadow_is_generic_in_its_request_and_decision_at_run_time() -> None:
    """What a run-time reader of the hints (typeguard, beartype, a docs tool) sees: shadow's
    ``decide`` takes a configuration and a request and returns a decision, three type
    variables, the same three its ShadowEvaluation is generic in."""
    from resilient.rollout import ConfigRollout

    hints = typing.get_type_hints(ConfigRollout.shadow)
    (config, request), decision = typing.get_args(hints["decide"])
    assert all(isinstance(v, typing.TypeVar) for v in (config, request, decision))
    assert len({config, request, decision}) == 3
    assert typing.get_args(hints["return"]) == (config, request, decision)
    cohort_of, _ = typing.get_args(hints["cohort_of"])
    assert typing.get_args(cohort_of) == ([request], str)
