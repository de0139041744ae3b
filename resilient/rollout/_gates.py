"""Health gates: does the canary cohort do worse than its control, beyond chance and beyond a
tolerance?

Each gate reads the samples of one stage (:class:`CohortSamples`, one for the canary and one
for the control) and gives a :class:`GateResult` whose :class:`Verdict` is one of four:

- ``PASS``: both sides have the minimum sample and the canary is not worse;
- ``VIOLATION``: the canary is worse, by a statistical test at level ``alpha`` *and* by more
  than the gate's tolerance (Kayenta's classifier does the same: a Mann-Whitney U test and an
  effect size);
- ``MISSING``: a side has fewer than ``min_samples``: never a pass;
- ``ERROR``: the gate itself failed (an exception of a user's gate).

Built in: :class:`SuccessRatioGate` (Fisher's exact test) and :class:`MetricGate` (Mann-Whitney
U on any recorded metric; :func:`latency_gate` is the one on latency).
"""

from __future__ import annotations

import enum
import math
import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from resilient._validate import Instance, Integer, Number, Text, check_fields, option
from resilient.rollout._stats import fisher_less, mann_whitney_greater

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_MIN_SAMPLES",
    "LATENCY",
    "CohortSamples",
    "GateResult",
    "HealthGate",
    "MetricGate",
    "SuccessRatioGate",
    "Verdict",
    "latency_gate",
]

LATENCY = "latency"
"""The metric name of request latency (seconds), recorded by ``ConfigRollout.record``."""

DEFAULT_ALPHA = 0.01
"""The level of every built-in gate's test: a healthy canary fails a gate by chance in at most
1% of evaluations (each stage evaluates many times: 5% would fail most rollouts)."""

DEFAULT_MIN_SAMPLES = 50
"""Samples each side needs before a gate judges (Kayenta warns below 50 per side)."""


class Verdict(enum.Enum):
    PASS = "pass"
    VIOLATION = "violation"
    MISSING = "missing"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate's verdict on one evaluation, with what it saw."""

    gate: str
    verdict: Verdict
    detail: str
    canary: float | None = None
    """The canary's value of the gate's statistic (a success ratio, a median)."""
    control: float | None = None
    p_value: float | None = None


@dataclass(slots=True)
class CohortSamples:
    """One side's samples in one stage: outcomes counted, each metric's latest values kept
    (at most ``capacity`` per metric, about 32 bytes each)."""

    capacity: int
    successes: int = 0
    total: int = 0
    metrics: dict[str, deque[float]] = field(default_factory=dict)

    def values(self, metric: str) -> deque[float]:
        found = self.metrics.get(metric)
        if found is None:
            found = self.metrics[metric] = deque(maxlen=self.capacity)
        return found


@runtime_checkable
class HealthGate(Protocol):
    """A comparison of the canary's samples with the control's."""

    @property
    def name(self) -> str: ...

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics it reads (``ConfigRollout.record`` accepts only these)."""
        ...

    def judge(self, canary: CohortSamples, control: CohortSamples) -> GateResult: ...


@dataclass(frozen=True, slots=True)
class SuccessRatioGate:
    """Fails when the canary's success ratio is lower than the control's by more than
    ``tolerance`` (an absolute share) and Fisher's exact test says so at level ``alpha``."""

    tolerance: float = option(0.01, Number(min=0, max=1, unit="share"))
    alpha: float = option(DEFAULT_ALPHA, Number(min=0, max=1, min_open=True, unit="level"))
    min_samples: int = option(DEFAULT_MIN_SAMPLES, Integer(min=1))

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def name(self) -> str:
        return "success_ratio"

    @property
    def metrics(self) -> tuple[str, ...]:
        return ()

    def judge(self, canary: CohortSamples, control: CohortSamples) -> GateResult:
        if canary.total < self.min_samples or control.total < self.min_samples:
            return GateResult(
                self.name,
                Verdict.MISSING,
                f"{canary.total} canary and {control.total} control requests, "
                f"{self.min_samples} needed on each side",
            )
        ratio = canary.successes / canary.total
        baseline = control.successes / control.total
        p_value = fisher_less(canary.successes, canary.total, control.successes, control.total)
        worse = baseline - ratio > self.tolerance and p_value < self.alpha
        verdict = Verdict.VIOLATION if worse else Verdict.PASS
        detail = (
            f"success {ratio:.2%} in the canary, {baseline:.2%} in the control "
            f"(p={p_value:.2g}, tolerance {self.tolerance:.2%})"
        )
        return GateResult(self.name, verdict, detail, ratio, baseline, p_value)


@dataclass(frozen=True, slots=True)
class MetricGate:
    """Fails when the canary's values of ``metric`` are larger than the control's (smaller,
    with ``higher_is_worse=False``) by the Mann-Whitney U test at level ``alpha``, and its
    median is past ``tolerance`` times the control's."""

    metric: str = option(LATENCY, Text(non_empty=True))
    tolerance: float = option(1.2, Number(min=1, unit="times"))
    higher_is_worse: bool = option(True, Instance(bool, "a bool"))
    alpha: float = option(DEFAULT_ALPHA, Number(min=0, max=1, min_open=True, unit="level"))
    min_samples: int = option(DEFAULT_MIN_SAMPLES, Integer(min=1))

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def name(self) -> str:
        return self.metric

    @property
    def metrics(self) -> tuple[str, ...]:
        return (self.metric,)

    def judge(self, canary: CohortSamples, control: CohortSamples) -> GateResult:
        ours = canary.metrics.get(self.metric, ())
        theirs = control.metrics.get(self.metric, ())
        if len(ours) < self.min_samples or len(theirs) < self.min_samples:
            return GateResult(
                self.name,
                Verdict.MISSING,
                f"{len(ours)} canary and {len(theirs)} control samples of {self.metric}, "
                f"{self.min_samples} needed on each side",
            )
        median = statistics.median(ours)
        baseline = statistics.median(theirs)
        if self.higher_is_worse:
            p_value = mann_whitney_greater(list(ours), list(theirs))
            past = median > self.tolerance * baseline
        else:
            p_value = mann_whitney_greater(list(theirs), list(ours))
            past = median * self.tolerance < baseline
        verdict = Verdict.VIOLATION if past and p_value < self.alpha else Verdict.PASS
        detail = (
            f"median {self.metric} {median:.4g} in the canary, {baseline:.4g} in the control "
            f"(p={p_value:.2g}, tolerance x{self.tolerance:g})"
        )
        return GateResult(self.name, verdict, detail, median, baseline, p_value)


def latency_gate(tolerance: float = 1.2, *, alpha: float = DEFAULT_ALPHA) -> MetricGate:
    """The gate on request latency: the canary's median at most ``tolerance`` times the
    control's (or not significantly larger)."""
    return MetricGate(LATENCY, tolerance, True, alpha)


def finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))
