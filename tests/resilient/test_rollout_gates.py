"""The built-in health gates at the exact edges of their bounds: the minimum sample on each
side, the tolerance, the test's level; what each verdict says, and the defaults."""

from __future__ import annotations

import math
from typing import Any

import pytest

from resilient.errors import ArgumentValueError
from resilient.rollout import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_SAMPLES,
    LATENCY,
    CohortSamples,
    GateResult,
    MetricGate,
    SuccessRatioGate,
    Verdict,
    latency_gate,
)
from resilient.rollout._gates import finite
from resilient.rollout._stats import fisher_less, mann_whitney_greater


def counts(successes: int, total: int) -> CohortSamples:
    return CohortSamples(1000, successes, total)


def values(*numbers: float, metric: str = LATENCY) -> CohortSamples:
    side = CohortSamples(1000)
    side.values(metric).extend(numbers)
    return side


def test_the_defaults() -> None:
    assert (DEFAULT_ALPHA, DEFAULT_MIN_SAMPLES, LATENCY) == (0.01, 50, "latency")
    assert SuccessRatioGate() == SuccessRatioGate(tolerance=0.01, alpha=0.01, min_samples=50)
    assert SuccessRatioGate().name == "success_ratio"
    assert SuccessRatioGate().metrics == ()
    gate = MetricGate()
    assert (gate.metric, gate.tolerance, gate.higher_is_worse) == ("latency", 1.2, True)
    assert (gate.alpha, gate.min_samples) == (0.01, 50)
    assert (gate.name, gate.metrics) == ("latency", ("latency",))
    assert latency_gate() == gate
    assert latency_gate(1.5, alpha=0.05) == MetricGate("latency", 1.5, True, 0.05, 50)
    assert [v.value for v in Verdict] == ["pass", "violation", "missing", "error"]


def test_a_fresh_side_and_a_bare_result_hold_nothing() -> None:
    side = CohortSamples(7)
    assert (side.capacity, side.successes, side.total, side.metrics) == (7, 0, 0, {})
    result = GateResult("g", Verdict.MISSING, "d")
    assert (result.canary, result.control, result.p_value) == (None, None, None)


def test_a_side_keeps_each_metrics_latest_values_up_to_its_capacity() -> None:
    side = CohortSamples(3)
    side.values("latency").extend([1.0, 2.0, 3.0, 4.0])
    side.values("latency").append(5.0)
    assert list(side.values("latency")) == [3.0, 4.0, 5.0]
    assert list(side.metrics) == ["latency"]


def test_the_success_ratio_gate_judges_from_exactly_min_samples_on_each_side() -> None:
    gate = SuccessRatioGate(min_samples=10)
    assert gate.judge(counts(10, 10), counts(10, 10)).verdict is Verdict.PASS
    short = gate.judge(counts(9, 9), counts(10, 10))
    assert short == GateResult(
        "success_ratio",
        Verdict.MISSING,
        "9 canary and 10 control requests, 10 needed on each side",
    )
    assert gate.judge(counts(10, 10), counts(9, 9)).verdict is Verdict.MISSING
    assert gate.judge(counts(0, 0), counts(0, 0)).verdict is Verdict.MISSING


def test_a_success_ratio_exactly_the_tolerance_lower_passes() -> None:
    gate = SuccessRatioGate(tolerance=0.25, min_samples=10)
    at = gate.judge(counts(750, 1000), counts(1000, 1000))  # 25 points lower, p tiny
    assert at.verdict is Verdict.PASS
    assert (at.canary, at.control) == (0.75, 1.0)
    assert at.p_value is not None
    assert at.p_value < 1e-50
    past = gate.judge(counts(749, 1000), counts(1000, 1000))
    assert past.verdict is Verdict.VIOLATION
    assert past.detail == (
        f"success 74.90% in the canary, 100.00% in the control (p={past.p_value:.2g}, "
        "tolerance 25.00%)"
    )


def test_a_success_ratio_lower_by_chance_passes() -> None:
    gate = SuccessRatioGate(min_samples=10)
    result = gate.judge(counts(8, 10), counts(10, 10))  # 20 points lower, but p = 0.24
    assert result.verdict is Verdict.PASS
    assert result.p_value == pytest.approx(fisher_less(8, 10, 10, 10))


def test_a_success_ratio_p_value_exactly_alpha_passes() -> None:
    p = fisher_less(40, 100, 60, 100)
    assert 0 < p < 1
    assert (
        SuccessRatioGate(alpha=p, min_samples=10).judge(counts(40, 100), counts(60, 100)).verdict
        is Verdict.PASS
    )
    assert (
        SuccessRatioGate(alpha=math.nextafter(p, 1), min_samples=10)
        .judge(counts(40, 100), counts(60, 100))
        .verdict
        is Verdict.VIOLATION
    )


def test_the_metric_gate_judges_from_exactly_min_samples_on_each_side() -> None:
    gate = MetricGate(min_samples=3)
    assert gate.judge(values(1, 1, 1), values(1, 1, 1)).verdict is Verdict.PASS
    short = gate.judge(values(1, 1), values(1, 1, 1))
    assert short == GateResult(
        "latency",
        Verdict.MISSING,
        "2 canary and 3 control samples of latency, 3 needed on each side",
    )
    assert gate.judge(values(1, 1, 1), values(1, 1)).verdict is Verdict.MISSING
    assert gate.judge(CohortSamples(9), CohortSamples(9)).verdict is Verdict.MISSING


def test_a_median_exactly_tolerance_times_the_controls_passes() -> None:
    control = [1.0] * 60
    gate = MetricGate(tolerance=1.5, min_samples=10)
    at = gate.judge(values(*[1.5] * 60), values(*control))
    assert at.verdict is Verdict.PASS
    assert (at.canary, at.control) == (1.5, 1.0)
    assert at.p_value == pytest.approx(mann_whitney_greater([1.5] * 60, control))
    past = gate.judge(values(*[1.5001] * 60), values(*control))
    assert past.verdict is Verdict.VIOLATION
    assert past.detail == (
        f"median latency 1.5 in the canary, 1 in the control (p={past.p_value:.2g}, tolerance x1.5)"
    )


def test_a_slower_median_by_chance_passes() -> None:
    gate = MetricGate(tolerance=1.0, min_samples=3)
    result = gate.judge(values(1.0, 2.0, 3.0), values(0.5, 1.9, 3.5))  # median 2 > 1.9
    assert result.verdict is Verdict.PASS
    assert result.p_value is not None
    assert result.p_value > 0.3


def test_a_metric_p_value_exactly_alpha_passes() -> None:
    canary, control = [2.0, 3.0, 4.0, 5.0, 6.0], [1.0, 2.0, 3.0, 4.0, 1.5]
    p = mann_whitney_greater(canary, control)
    assert 0 < p < 1
    at = MetricGate(tolerance=1.0, alpha=p, min_samples=5).judge(values(*canary), values(*control))
    assert at.verdict is Verdict.PASS
    above = MetricGate(tolerance=1.0, alpha=math.nextafter(p, 1), min_samples=5)
    assert above.judge(values(*canary), values(*control)).verdict is Verdict.VIOLATION


def test_when_lower_is_worse_a_smaller_canary_fails() -> None:
    gate = MetricGate("throughput", tolerance=2.0, higher_is_worse=False, min_samples=10)
    control = values(*[2.0] * 40, metric="throughput")
    at = gate.judge(values(*[1.0] * 40, metric="throughput"), control)  # exactly half
    assert at.verdict is Verdict.PASS
    assert at.p_value == pytest.approx(mann_whitney_greater([2.0] * 40, [1.0] * 40))
    assert at.p_value is not None
    assert at.p_value < 1e-6
    past = gate.judge(values(*[0.99] * 40, metric="throughput"), control)
    assert past.verdict is Verdict.VIOLATION
    assert past.gate == "throughput"
    faster = gate.judge(values(*[9.0] * 40, metric="throughput"), control)
    assert faster.verdict is Verdict.PASS
    assert faster.p_value == pytest.approx(mann_whitney_greater([2.0] * 40, [9.0] * 40))


def test_the_latency_gate_is_on_higher_latency() -> None:
    gate = latency_gate()
    assert gate.higher_is_worse is True
    slow = gate.judge(values(*[1.0] * 60), values(*[0.5] * 60))
    assert slow.verdict is Verdict.VIOLATION
    assert gate.judge(values(*[0.5] * 60), values(*[1.0] * 60)).verdict is Verdict.PASS


def test_only_a_finite_number_is_finite() -> None:
    assert finite(1.5) is True
    assert finite(0.0) is True
    assert finite(math.nan) is False
    assert finite(math.inf) is False
    assert finite(-math.inf) is False


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: SuccessRatioGate(tolerance=1.5),
            "SuccessRatioGate.tolerance must be a finite number of share >= 0 and <= 1, got 1.5",
        ),
        (
            lambda: SuccessRatioGate(tolerance=-0.1),
            "SuccessRatioGate.tolerance must be a finite number of share >= 0 and <= 1, got -0.1",
        ),
        (
            lambda: SuccessRatioGate(alpha=1.5),
            "SuccessRatioGate.alpha must be a finite number of level > 0 and <= 1, got 1.5",
        ),
        (
            lambda: SuccessRatioGate(alpha=0),
            "SuccessRatioGate.alpha must be a finite number of level > 0 and <= 1, got 0",
        ),
        (
            lambda: SuccessRatioGate(min_samples=0),
            "SuccessRatioGate.min_samples must be an int >= 1, got 0",
        ),
        (
            lambda: MetricGate(tolerance=0.99),
            "MetricGate.tolerance must be a finite number of times >= 1, got 0.99",
        ),
        (
            lambda: MetricGate(alpha=0),
            "MetricGate.alpha must be a finite number of level > 0 and <= 1, got 0",
        ),
        (
            lambda: MetricGate(alpha=1.5),
            "MetricGate.alpha must be a finite number of level > 0 and <= 1, got 1.5",
        ),
        (lambda: MetricGate(min_samples=0), "MetricGate.min_samples must be an int >= 1, got 0"),
        (lambda: MetricGate(metric=""), "MetricGate.metric must be a non-empty str, got ''"),
    ],
)
def test_a_gate_option_out_of_its_bounds_is_refused_word_for_word(make: Any, message: str) -> None:
    with pytest.raises(ArgumentValueError) as caught:
        make()
    assert str(caught.value) == message


def test_a_gate_option_at_its_bounds_is_taken() -> None:
    gate = SuccessRatioGate(tolerance=1, alpha=1, min_samples=1)
    assert (gate.tolerance, gate.alpha, gate.min_samples) == (1, 1, 1)
    assert SuccessRatioGate(tolerance=0).tolerance == 0
    metric = MetricGate("cpu", tolerance=1, alpha=1, min_samples=1)
    assert (metric.metric, metric.tolerance, metric.alpha, metric.min_samples) == ("cpu", 1, 1, 1)
    assert (
        metric.judge(values(1.0, metric="cpu"), values(1.0, metric="cpu")).verdict is Verdict.PASS
    )
