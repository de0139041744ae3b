"""A rollout's options and stages at the exact edges of their bounds, the presets' stages, and
the defaults (AppConfig's): each bound's last value accepted, the next refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from resilient.errors import ArgumentTypeError, ArgumentValueError
from resilient.rollout import (
    DEFAULT_BAKE,
    DEFAULT_EVALUATION_INTERVAL,
    DEFAULT_ROLLOUT_OPTIONS,
    MetricGate,
    RolloutOptions,
    Stage,
    SuccessRatioGate,
    all_at_once,
    by_cohorts,
    canary,
    linear,
)


def refused(make: Any, words: str) -> None:
    with pytest.raises((ArgumentTypeError, ArgumentValueError)) as caught:
        make()
    assert words in str(caught.value)


def refused_exactly(make: Any, message: str) -> None:
    with pytest.raises((ArgumentTypeError, ArgumentValueError)) as caught:
        make()
    assert str(caught.value) == message


def test_the_defaults() -> None:
    assert (DEFAULT_BAKE, DEFAULT_EVALUATION_INTERVAL) == (360.0, 10.0)
    assert Stage(percent=5).bake == 360.0
    options = RolloutOptions()
    assert options == DEFAULT_ROLLOUT_OPTIONS
    assert options.stages == (Stage(percent=10.0, bake=1200.0),)
    assert options.gates == (SuccessRatioGate(), MetricGate())
    assert options.evaluation_interval == 10.0
    assert (options.failure_limit, options.missing_limit, options.error_limit) == (0, 3, 3)
    assert options.sync_interval == 0.25
    assert options.max_samples == 10_000
    assert options.by_cohort is False


@pytest.mark.parametrize("percent", [0.001, 0.5, 1, 50, 99.99])
def test_a_stage_percent_is_above_0_and_below_100(percent: float) -> None:
    assert Stage(percent=percent).percent == percent


@pytest.mark.parametrize(
    ("percent", "words"),
    [
        (0, "Stage.percent must be a finite number of percent > 0 and <= 100, got 0"),
        (-0.5, "Stage.percent must be a finite number of percent > 0 and <= 100, got -0.5"),
        (
            100,
            "Stage.percent must be < 100 "
            "(past the last stage the candidate is everyone's), got 100",
        ),
        (100.5, "Stage.percent must be a finite number of percent > 0 and <= 100, got 100.5"),
    ],
)
def test_a_stage_percent_out_of_its_bounds_is_refused(percent: float, words: str) -> None:
    refused(lambda: Stage(percent=percent), words)
    if percent == 100:
        refused_exactly(lambda: Stage(percent=percent), words)


def test_a_stage_bake_may_be_zero_but_not_negative() -> None:
    assert Stage(percent=5, bake=0).bake == 0
    refused(lambda: Stage(percent=5, bake=-0.001), "Stage.bake must be a finite number of seconds")


def test_a_stage_by_cohort() -> None:
    stage = Stage(cohorts=("eu", "us"))
    assert (stage.percent, stage.cohorts) == (None, ("eu", "us"))
    refused(lambda: Stage(cohorts=("eu", 3)), "Stage.cohorts must be a tuple of non-empty str")
    refused(lambda: Stage(cohorts=["eu"]), "Stage.cohorts must be a tuple of non-empty str")
    refused_exactly(
        lambda: Stage(cohorts=()),
        "Stage needs exactly one of percent and cohorts, got percent=None and cohorts=()",
    )
    refused_exactly(
        lambda: Stage(percent=5, cohorts=("eu",)),
        "Stage needs exactly one of percent and cohorts, got percent=5.0 and cohorts=('eu',)",
    )


def test_linear_steps_up_to_but_never_reaching_100() -> None:
    assert linear() == tuple(Stage(percent=p, bake=360.0) for p in (20, 40, 60, 80))
    assert [s.percent for s in linear(25, bake=5)] == [25, 50, 75]
    assert {s.bake for s in linear(25, bake=5)} == {5}
    assert [s.percent for s in linear(30)] == [30, 60, 90]
    assert [s.percent for s in linear(99)] == [99]
    ones = linear(1)  # 100 is a multiple of the step: the stage at 100 is everyone's, none
    assert [s.percent for s in ones] == list(range(1, 100))
    assert [s.percent for s in linear(0.5)][-2:] == [99.0, 99.5]
    assert len(linear(0.5)) == 199
    assert [s.percent for s in linear(100 / 3)] == [33.333333333, 66.666666667]
    fine = linear(0.1)
    assert len(fine) == 999
    assert (fine[0].percent, fine[1].percent, fine[2].percent) == (0.1, 0.2, 0.3)
    assert fine[-1].percent == 99.9
    refused_exactly(
        lambda: linear(100),
        "linear(step) must be < 100 (past the last stage the candidate is everyone's), got 100",
    )
    refused(lambda: linear(-5), "linear(step) must be a finite number of percent > 0")


def test_canary_and_all_at_once_and_by_cohorts() -> None:
    assert canary() == (Stage(percent=10.0, bake=1200.0),)
    assert canary(5.0, bake=30.0) == (Stage(percent=5.0, bake=30.0),)
    assert all_at_once() == ()
    assert RolloutOptions(stages=all_at_once()).stages == ()
    stages = by_cohorts(("eu",), ("us", "asia"), bake=15.0)
    assert stages == (Stage(cohorts=("eu",), bake=15.0), Stage(cohorts=("us", "asia"), bake=15.0))
    assert by_cohorts(["eu"])[0].cohorts == ("eu",)  # type: ignore[arg-type]
    assert by_cohorts(("eu",))[0].bake == 360.0
    assert RolloutOptions(stages=stages).by_cohort is True


def test_percent_stages_must_grow_strictly() -> None:
    assert (
        RolloutOptions(stages=(Stage(percent=20), Stage(percent=20.01))).stages[1].percent == 20.01
    )
    refused_exactly(
        lambda: RolloutOptions(stages=(Stage(percent=20), Stage(percent=20))),
        "RolloutOptions.stages must grow in percent, got [20.0, 20.0]",
    )
    refused(
        lambda: RolloutOptions(stages=(Stage(percent=10), Stage(percent=30), Stage(percent=20))),
        "must grow in percent",
    )


def test_stages_are_all_by_percent_or_all_by_cohort() -> None:
    refused_exactly(
        lambda: RolloutOptions(stages=(Stage(cohorts=("eu",)), Stage(percent=20))),
        "RolloutOptions.stages must all be by percent or all by cohorts",
    )
    options = RolloutOptions(stages=(Stage(cohorts=("eu",)), Stage(cohorts=("us",))))
    assert len(options.stages) == 2
    refused_exactly(
        lambda: RolloutOptions(stages=(Stage(cohorts=("eu", "us")), Stage(cohorts=("us",)))),
        "RolloutOptions.stages must not repeat a cohort, got ['eu', 'us', 'us']",
    )
    refused(lambda: RolloutOptions(stages=[Stage(percent=5)]), "RolloutOptions.stages must be")
    refused(lambda: RolloutOptions(stages=(5,)), "RolloutOptions.stages must be a tuple of Stage")


@pytest.mark.parametrize("name", ["failure_limit", "missing_limit", "error_limit"])
def test_a_limit_may_be_zero_but_not_negative(name: str) -> None:
    assert getattr(RolloutOptions(**{name: 0}), name) == 0
    refused(lambda: RolloutOptions(**{name: -1}), f"RolloutOptions.{name} must be an int >= 0")


@pytest.mark.parametrize("name", ["evaluation_interval", "sync_interval"])
def test_an_interval_is_above_zero(name: str) -> None:
    assert getattr(RolloutOptions(**{name: 0.001}), name) == 0.001
    refused(
        lambda: RolloutOptions(**{name: 0}),
        f"RolloutOptions.{name} must be a finite number of seconds > 0, got 0",
    )


def test_max_samples_from_1_to_ten_million() -> None:
    assert RolloutOptions(max_samples=1).max_samples == 1
    assert RolloutOptions(max_samples=10_000_000).max_samples == 10_000_000
    for bad in (0, 10_000_001):
        refused(
            lambda bad=bad: RolloutOptions(max_samples=bad),
            f"RolloutOptions.max_samples must be an int >= 1 and <= 10000000, got {bad}",
        )


def test_gates_must_be_health_gates() -> None:
    assert RolloutOptions(gates=()).gates == ()
    refused(
        lambda: RolloutOptions(gates=(3,)), "RolloutOptions.gates must be a tuple of HealthGate"
    )
