"""Every option of a :class:`~resilient.rollout.ConfigRollout`, its stages, and the presets.

A rollout moves a candidate configuration through stages; each stage widens the canary cohort
(a percentage of keys through a stable hash, or named cohorts such as regions) and lasts at
least its bake time. Past the last stage, the candidate becomes current for everyone. The
presets follow AWS AppConfig's (``Linear20PercentEvery6Minutes``, ``Canary10Percent20Minutes``,
``AllAtOnce``), with a control cohort to compare with at every stage but the last.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from resilient._validate import Integer, Number, TupleOf, check, check_fields, option
from resilient.errors import ArgumentValueError
from resilient.rollout._gates import HealthGate, MetricGate, SuccessRatioGate

__all__ = [
    "DEFAULT_BAKE",
    "DEFAULT_EVALUATION_INTERVAL",
    "DEFAULT_ROLLOUT_OPTIONS",
    "RolloutOptions",
    "Stage",
    "all_at_once",
    "by_cohorts",
    "canary",
    "linear",
]

DEFAULT_BAKE = 360.0
"""Seconds a stage lasts at least: AppConfig's 6 minutes a step
(``Linear20PercentEvery6Minutes``)."""

DEFAULT_EVALUATION_INTERVAL = 10.0
"""Seconds between two evaluations of the gates: a failed gate rolls back within this."""


_PERCENT = Number(min=0, min_open=True, max=100, unit="percent")


def _check_percent(where: str, value: float) -> float:
    percent: float = check(where, value, _PERCENT)
    if percent == 100:
        raise ArgumentValueError(
            f"{where} must be < 100 (past the last stage the candidate is everyone's), got 100"
        )
    return percent


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage: the canary is ``percent`` of keys (0 < percent < 100), or the keys of the
    named ``cohorts`` (with every stage before it's), for at least ``bake`` seconds."""

    percent: float | None = None
    cohorts: tuple[str, ...] = option(
        (), TupleOf(lambda name: isinstance(name, str) and bool(name), "a tuple of non-empty str")
    )
    bake: float = option(DEFAULT_BAKE, Number(min=0, unit="seconds"))

    def __post_init__(self) -> None:
        check_fields(self)
        if self.percent is not None:
            object.__setattr__(self, "percent", _check_percent("Stage.percent", self.percent))
        if (self.percent is None) == (not self.cohorts):
            raise ArgumentValueError(
                f"Stage needs exactly one of percent and cohorts, got percent={self.percent!r} "
                f"and cohorts={self.cohorts!r}"
            )


def linear(step: float = 20.0, bake: float = DEFAULT_BAKE) -> tuple[Stage, ...]:
    """``step`` percent more every ``bake`` seconds: AppConfig's
    ``Linear20PercentEvery6Minutes`` with the defaults (20, 40, 60, 80, then everyone)."""
    step = _check_percent("linear(step)", step)
    count = int(100 // step) if 100 % step else int(100 // step) - 1
    return tuple(Stage(percent=round(step * (i + 1), 9), bake=bake) for i in range(count))


def canary(percent: float = 10.0, bake: float = 1200.0) -> tuple[Stage, ...]:
    """``percent`` of keys for ``bake`` seconds, then everyone: AppConfig's
    ``Canary10Percent20Minutes`` with the defaults."""
    return (Stage(percent=percent, bake=bake),)


def all_at_once() -> tuple[Stage, ...]:
    """No stage: the candidate becomes current for everyone at once, with no gate (AppConfig's
    ``AllAtOnce``). Validation still runs; nothing compares it with anything."""
    return ()


def by_cohorts(*groups: tuple[str, ...], bake: float = DEFAULT_BAKE) -> tuple[Stage, ...]:
    """One stage per group of named cohorts, each adding its group to the canary:
    ``by_cohorts(("eu-west",), ("eu-central", "us-east"))``."""
    return tuple(Stage(cohorts=tuple(group), bake=bake) for group in groups)


DEFAULT_GATES: tuple[HealthGate, ...] = (SuccessRatioGate(), MetricGate())
"""The success ratio (at most 1 point lower) and the median latency (at most x1.2)."""


@dataclass(frozen=True, slots=True)
class RolloutOptions:
    """How a :class:`~resilient.rollout.ConfigRollout` stages a candidate and judges it."""

    stages: tuple[Stage, ...] = option(
        canary(), TupleOf(lambda stage: isinstance(stage, Stage), "a tuple of Stage")
    )
    """The stages (a preset: :func:`linear`, :func:`canary`, :func:`by_cohorts`,
    :func:`all_at_once`). Percentages must grow from stage to stage; named cohorts must not
    repeat."""
    gates: tuple[HealthGate, ...] = option(
        DEFAULT_GATES, TupleOf(lambda gate: isinstance(gate, HealthGate), "a tuple of HealthGate")
    )
    """The gates every evaluation runs. See :data:`DEFAULT_GATES`."""
    evaluation_interval: float = option(
        DEFAULT_EVALUATION_INTERVAL, Number(min=0, min_open=True, unit="seconds")
    )
    """See :data:`DEFAULT_EVALUATION_INTERVAL`."""
    failure_limit: int = option(0, Integer(min=0))
    """Evaluations of a stage with a violated gate tolerated; one more rolls back (Argo's
    ``failureLimit``). 0: the first violation rolls back."""
    missing_limit: int = option(3, Integer(min=0))
    """Evaluations past a stage's bake time without the minimum sample tolerated; one more rolls
    back (Argo's ``inconclusiveLimit``). Missing data never promotes."""
    error_limit: int = option(3, Integer(min=0))
    """Evaluations of a stage where a gate raised tolerated; one more rolls back (Argo's
    ``consecutiveErrorLimit``, counted per stage)."""
    sync_interval: float = option(0.25, Number(min=0, min_open=True, unit="seconds"))
    """Seconds between two synchronisations of a fleet's instance with the store
    (:meth:`~resilient.rollout.ConfigRollout.follow`: its samples sent, the plan read): every
    instance serves a new stage, or a rollback, within this of the leader."""
    max_samples: int = option(10_000, Integer(min=1, max=10_000_000))
    """Values kept per metric, side and stage (the latest): at most about 32 bytes each, so
    the defaults keep under 1 MB per stage."""

    def __post_init__(self) -> None:
        check_fields(self)
        percents = [stage.percent for stage in self.stages if stage.percent is not None]
        if percents and len(percents) != len(self.stages):
            raise ArgumentValueError(
                "RolloutOptions.stages must all be by percent or all by cohorts"
            )
        if any(b <= a for a, b in itertools.pairwise(percents)):
            raise ArgumentValueError(
                f"RolloutOptions.stages must grow in percent, got {percents!r}"
            )
        names = [name for stage in self.stages for name in stage.cohorts]
        if len(names) != len(set(names)):
            raise ArgumentValueError(
                f"RolloutOptions.stages must not repeat a cohort, got {names!r}"
            )

    @property
    def by_cohort(self) -> bool:
        """True when the stages name cohorts (``config_for`` needs the request's cohort)."""
        return any(stage.cohorts for stage in self.stages)


DEFAULT_ROLLOUT_OPTIONS = RolloutOptions()
"""A 10% canary for 20 minutes, evaluated every 10 s on success ratio and latency, rolled back
on the first violation or after 3 evaluations without data past the bake time."""
