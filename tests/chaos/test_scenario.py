"""The scenario model: declarations checked up front, SLOs measured exactly, verdicts."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from aiohttp import web

from chaos.load import Load, LoadResult
from chaos.scenario import (
    AddedLatency,
    AddToxic,
    AiohttpServer,
    Arm,
    ArmContext,
    DisableProxy,
    EnableProxy,
    Gauge,
    GaugeSeries,
    Incident,
    LatencyGrowth,
    LatencyPercentile,
    OutcomeRate,
    OutcomeRatio,
    Proxy,
    RedisServer,
    RunData,
    Scenario,
    ScenarioError,
    SuccessRatio,
    Window,
    judge_guarded,
    judge_naive,
)


async def _build(ctx: ArmContext) -> web.Application:
    return web.Application()


def _backend() -> web.Application:
    return web.Application()


def make_scenario(**changes: object) -> Scenario:
    fields: dict[str, object] = {
        "name": "demo",
        "incident": Incident("demo.txt", "demo incident"),
        "pattern": "demo guard",
        "load": Load(rate=10, duration=10),
        "arms": (Arm("naive", "naive", _build), Arm("guarded", "guarded", _build)),
        "servers": (RedisServer("redis"), AiohttpServer("backend", _backend)),
        "proxies": (Proxy("redis", "redis"),),
        "faults": (
            DisableProxy(6.0, "redis"),
            AddToxic(2.0, "redis", "latency", "slow", {"latency": 2000}),
            EnableProxy(8.0, "redis"),
        ),
        "windows": (Window("before", 0, 2), Window("fault", 2, 8)),
        "hypothesis": (
            OutcomeRatio("no-false-429", "false_429", max=0.0, window="fault"),
            LatencyPercentile("p99", max=0.1, window="fault"),
        ),
        "breaks": ("no-false-429",),
        "signature": (OutcomeRatio("mostly-429", "false_429", min=0.9, window="fault"),),
    }
    fields.update(changes)
    return Scenario(**fields)  # type: ignore[arg-type]


def load_result(
    scheduled: Sequence[float],
    outcomes: Sequence[str],
    latency: Sequence[float],
    tags: Sequence[str] | None = None,
    duration: float = 10.0,
) -> LoadResult:
    """A synthetic run: ``latency`` NaN means the request was never sent (overflow)."""
    names = list(dict.fromkeys(outcomes))
    tags = tags if tags is not None else [""] * len(scheduled)
    tag_names = list(dict.fromkeys(tags))
    sched = np.array(scheduled, dtype=np.float64)
    lat = np.array(latency, dtype=np.float64)
    return LoadResult(
        t0=0.0,
        duration=duration,
        scheduled=sched,
        started=np.where(np.isnan(lat), np.nan, sched),
        finished=sched + lat,
        status=np.zeros(len(sched), dtype=np.int16),
        outcome=np.array([names.index(o) for o in outcomes], dtype=np.int16),
        tag=np.array([tag_names.index(t) for t in tags], dtype=np.int16),
        outcome_names=names,
        tag_names=tag_names,
    )


# -- declarations ----------------------------------------------------------------------------


def test_faults_are_sorted_by_offset() -> None:
    assert [f.at for f in make_scenario().faults] == [2.0, 6.0, 8.0]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"faults": (DisableProxy(1, "nope"),)}, r"faults\[0\]\.proxy: 'nope'"),
        ({"faults": (DisableProxy(11, "redis"),)}, r"faults\[0\]\.at"),
        ({"proxies": (Proxy("redis", "memcached"),)}, r"proxies\[0\]\.upstream"),
        ({"windows": (Window("before", 0, 2), Window("fault", 5, 12))}, r"windows\[1\]"),
        ({"breaks": ("unknown",)}, r"breaks\[0\]: 'unknown'"),
        ({"breaks": ()}, "breaks"),
        ({"hypothesis": ()}, "hypothesis"),
        ({"arms": (Arm("naive", "naive", _build),)}, "'guarded'"),
        (
            {"arms": (Arm("a", "naive", _build), Arm("a", "guarded", _build))},
            "arms: 'a' appears twice",
        ),
        (
            {"signature": (OutcomeRatio("x", "false_429", min=0.9, window="later"),)},
            r"signature\[0\]\.window: 'later'",
        ),
        (
            {"hypothesis": (AddedLatency("p", max=1, window="gone"),)},
            r"hypothesis\[0\]\.window: 'gone'",
        ),
        ({"ok_outcomes": ()}, "ok_outcomes"),
        ({"ok_outcomes": "ok"}, "ok_outcomes"),
        ({"name": "has space"}, "name"),
    ],
)
def test_inconsistent_scenario_is_refused_naming_the_field(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ScenarioError, match=message):
        make_scenario(**changes)


def test_slo_needs_exactly_one_bound() -> None:
    with pytest.raises(ScenarioError, match="exactly one of min= or max="):
        OutcomeRatio("x", "error")
    with pytest.raises(ScenarioError, match="exactly one"):
        OutcomeRate("x", "ok", min=1, max=2)
    with pytest.raises(ScenarioError, match="exactly one"):
        Gauge("x", "conns")
    with pytest.raises(ScenarioError, match="exactly one"):
        Gauge("x", "conns", min=1, max=2)


def test_scaled_scenario_shortens_offsets_windows_and_load_alike() -> None:
    scaled = make_scenario().scaled(0.25)
    assert scaled.duration == 2.5
    assert [f.at for f in scaled.faults] == [0.5, 1.5, 2.0]
    assert [(w.start, w.end) for w in scaled.windows] == [(0, 0.5), (0.5, 2.0)]
    assert scaled.bucket == 0.25
    assert scaled.load.rate == 10
    toxic = scaled.faults[0]
    assert isinstance(toxic, AddToxic)
    assert toxic.attributes == {"latency": 2000}


@pytest.mark.parametrize("factor", [0, -1, math.inf, math.nan])
def test_bad_scale_is_refused(factor: float) -> None:
    with pytest.raises(ScenarioError, match="scale"):
        make_scenario().scaled(factor)


def test_a_scale_below_the_scenarios_smallest_is_refused_saying_why() -> None:
    scenario = make_scenario(min_scale=0.5, min_scale_reason="windows need 100 samples")
    assert scenario.scaled(0.5).duration == pytest.approx(5.0)
    with pytest.raises(ScenarioError) as refused:
        scenario.scaled(0.4)
    assert str(refused.value) == (
        "scenario 'demo' runs at scale 0.5 or more, not 0.4: windows need 100 samples"
    )
    with pytest.raises(ScenarioError, match="min_scale_reason: say why"):
        make_scenario(min_scale=0.5)
    with pytest.raises(ScenarioError, match=r"min_scale: must be in \[0, 1\], got 2"):
        make_scenario(min_scale=2, min_scale_reason="x")


# -- SLOs ------------------------------------------------------------------------------------

WINDOWS = {"before": Window("before", 0, 2), "fault": Window("fault", 2, 8)}


def run_of(load: LoadResult, gauges: dict[str, GaugeSeries] | None = None) -> RunData:
    return RunData(load, gauges or {}, WINDOWS)


def test_outcome_ratio_counts_only_the_window_and_tag() -> None:
    load = load_result(
        scheduled=[1, 3, 4, 5, 6],
        outcomes=["false_429", "false_429", "ok", "limited", "ok"],
        latency=[0.01] * 5,
        tags=["n", "n", "n", "abusive", "n"],
    )
    slo = OutcomeRatio("f", "false_429", max=0.0, window="fault", tag="n")
    result = slo.evaluate(run_of(load))
    assert result.value == pytest.approx(1 / 3)
    assert not result.passed
    assert (result.op, result.bound) == ("<=", 0.0)
    both = OutcomeRatio("any-429", ("false_429", "limited"), min=0.5, window="fault")
    assert both.evaluate(run_of(load)).value == pytest.approx(2 / 4)


def test_success_ratio_accepts_several_success_outcomes() -> None:
    load = load_result([0, 1, 2, 3], ["ok", "fallback", "error", "ok"], [0.01] * 4)
    result = SuccessRatio("s", min=0.75, success=("ok", "fallback")).evaluate(run_of(load))
    assert result.value == 0.75
    assert result.passed


def test_outcome_rate_is_per_second_of_the_window() -> None:
    load = load_result(
        scheduled=[2.5, 3, 4, 5, 6, 7], outcomes=["ok"] * 6, latency=[0.01] * 6,
        tags=["abusive"] * 5 + ["n"],
    )  # fmt: skip
    result = OutcomeRate("cap", "ok", tag="abusive", max=1.0, window="fault").evaluate(run_of(load))
    assert result.value == pytest.approx(5 / 6)
    assert result.passed
    assert result.unit == "req/s"


def test_latency_percentile_counts_never_sent_requests_as_infinitely_slow() -> None:
    load = load_result([3, 4], ["ok", "overflow"], [0.01, math.nan])
    result = LatencyPercentile("p", max=1.0, q=99, window="fault").evaluate(run_of(load))
    assert result.value == math.inf
    assert not result.passed


def test_latency_percentile_is_nearest_rank() -> None:
    load = load_result(list(np.linspace(2, 7.9, 100)), ["ok"] * 100, [0.030] * 99 + [0.500])
    p99 = LatencyPercentile("p99", max=0.025, q=99, window="fault").evaluate(run_of(load))
    assert p99.value == pytest.approx(0.030)
    p100 = LatencyPercentile("max", max=0.1, q=100, window="fault").evaluate(run_of(load))
    assert p100.value == pytest.approx(0.5)
    assert not p100.passed


def _with_control(guarded: Sequence[float], control: Sequence[float]) -> LoadResult:
    """Guarded and control requests interleaved over the window ``fault`` (2-8 s)."""
    n = len(guarded) + len(control)
    scheduled = list(np.linspace(2, 7.9, n))
    tags = ["normal", "control"] * (n // 2)
    latency: list[float] = []
    g, c = iter(guarded), iter(control)
    for tag in tags:
        latency.append(next(c) if tag == "control" else next(g))
    return load_result(scheduled, ["ok"] * n, latency, tags)


def test_added_latency_is_the_percentile_minus_the_control_groups_in_the_same_window() -> None:
    # a stall of the machine (+3 ms) hits 5 % of both groups: it is not the guard's
    stalled = [0.003] * 5 + [0.0] * 95
    guarded = [0.001 + 0.020 + s for s in stalled] * 2
    control = [0.001 + s for s in stalled] * 2
    result = AddedLatency("added", max=0.025, window="fault").evaluate(
        run_of(_with_control(guarded, control))
    )
    assert result.value == pytest.approx(0.020)
    assert result.passed
    assert result.problem is None
    assert result.unit == "s"


def test_added_latency_over_its_bound_fails() -> None:
    load = _with_control([0.030] * 200, [0.001] * 200)
    result = AddedLatency("added", max=0.002, window="fault").evaluate(run_of(load))
    assert result.value == pytest.approx(0.029)
    assert not result.passed


def test_added_latency_measures_every_non_control_request_unless_tag_is_given() -> None:
    tags = ["normal", "control", "abusive", "control"] * 100
    latency = {"normal": 0.005, "abusive": 0.050, "control": 0.001}
    load = load_result(
        list(np.linspace(2, 7.9, len(tags))), ["ok"] * len(tags), [latency[t] for t in tags], tags
    )
    run = run_of(load)
    assert AddedLatency("all", max=1, window="fault").evaluate(run).value == pytest.approx(0.049)
    normal = AddedLatency("normal", max=1, window="fault", tag="normal").evaluate(run)
    assert normal.value == pytest.approx(0.004)
    nobody = AddedLatency("nobody", max=1, window="fault", tag="nobody").evaluate(run)
    assert nobody.value is None
    assert nobody.problem is not None
    assert "no 'nobody' request" in nobody.problem


def test_added_latency_with_too_few_control_requests_is_a_harness_problem_not_a_pass() -> None:
    load = _with_control([0.001] * 99, [0.001] * 99)
    result = AddedLatency("added", max=0.002, window="fault").evaluate(run_of(load))
    assert result.value is None
    assert not result.passed
    assert result.problem is not None
    assert "insufficient data: 99 'control' requests" in result.problem
    assert "need >= 100" in result.problem


def test_added_latency_refuses_a_control_group_equal_to_the_measured_one() -> None:
    with pytest.raises(ScenarioError, match=r"'added'.*both 'control'"):
        AddedLatency("added", max=1, tag="control")


def test_empty_window_does_not_hold() -> None:
    load = load_result([0.5], ["ok"], [0.01])
    result = OutcomeRatio("f", "false_429", max=0.0, window="fault").evaluate(run_of(load))
    assert result.value is None
    assert not result.passed


def test_gauge_max_and_min_over_a_window() -> None:
    series = GaugeSeries(np.array([0.0, 1.0, 3.0, 5.0, 9.0]), np.array([50, 1, 7, 3, 99.0]))
    run = run_of(load_result([1], ["ok"], [0.01]), {"conns": series})
    high = Gauge("cap", "conns", max=8, window="fault").evaluate(run)
    low = Gauge("floor", "conns", min=4, window="fault").evaluate(run)
    assert (high.value, high.passed) == (7, True)
    assert (low.value, low.passed) == (3, False)
    assert (high.op, high.bound, high.kind) == ("<=", 8, "Gauge")
    assert (low.op, low.bound, low.kind) == (">=", 4, "Gauge")
    assert high.description == "max of gauge 'conns' <= 8, window 'fault'"
    assert low.description == "min of gauge 'conns' >= 4, window 'fault'"
    assert Gauge("all", "conns", max=8).evaluate(run).value == 99
    assert Gauge("gone", "absent", max=8).evaluate(run).value is None


# -- verdicts --------------------------------------------------------------------------------


def _fault_run(false_429_share: float, added_latency: float) -> RunData:
    n = 100
    bad = round(n * false_429_share)
    outcomes = ["ok"] * 20 + ["false_429"] * bad + ["ok"] * (n - bad)
    scheduled = list(np.linspace(0, 1.9, 20)) + list(np.linspace(2, 7.9, n))
    latency = [0.01] * 20 + [0.01 + added_latency] * n
    return run_of(load_result(scheduled, outcomes, latency))


def test_naive_arm_reproduces_when_it_breaks_the_named_slos_and_shows_the_signature() -> None:
    scenario = make_scenario()
    judged = judge_naive(scenario, _fault_run(0.95, 0.0))
    assert judged.verdict == "reproduced"
    assert [s.passed for s in judged.slos] == [False, True]
    assert [s.passed for s in judged.signature] == [True]
    assert (judged.problems, judged.untrusted) == ((), ())


def test_naive_arm_without_the_signature_does_not_reproduce() -> None:
    judged = judge_naive(make_scenario(), _fault_run(0.5, 0.0))
    assert judged.verdict == "not-reproduced"
    assert not judged.signature[0].passed


def test_naive_arm_keeping_the_slo_does_not_reproduce() -> None:
    assert judge_naive(make_scenario(signature=()), _fault_run(0.0, 0.0)).verdict == (
        "not-reproduced"
    )


def test_guarded_arm_is_mitigated_only_when_every_slo_holds() -> None:
    assert judge_guarded(make_scenario(), _fault_run(0.0, 0.05)).verdict == "mitigated"
    assert judge_guarded(make_scenario(), _fault_run(0.0, 0.2)).verdict == "failed"
    assert judge_guarded(make_scenario(), _fault_run(0.01, 0.0)).verdict == "failed"


def _two_windows(before: Sequence[float], fault: Sequence[float]) -> LoadResult:
    """Requests tagged ``auth`` over ``before`` (0-2 s), then over ``fault`` (2-8 s)."""
    scheduled = [*np.linspace(0, 1.99, len(before)), *np.linspace(2, 7.99, len(fault))]
    latency = [*before, *fault]
    return load_result(scheduled, ["ok"] * len(latency), latency, ["auth"] * len(latency))


def test_latency_growth_is_the_windows_percentile_over_the_baselines() -> None:
    load = _two_windows([0.010] * 150, [0.015] * 150)
    slo = LatencyGrowth("growth", max=2.0, window="fault", baseline="before", tag="auth")
    result = slo.evaluate(run_of(load))
    assert result.value == pytest.approx(1.5)
    assert result.passed
    assert (result.op, result.bound, result.unit) == ("<=", 2.0, "x")
    assert result.description == (
        "p99 service time of 'auth' requests <= 2x its p99 in window 'before', window 'fault'"
    )


def test_latency_growth_far_over_its_bound_fails() -> None:
    load = _two_windows([0.010] * 150, [0.500] * 150)
    slo = LatencyGrowth("growth", max=2.0, window="fault", baseline="before", tag="auth")
    result = slo.evaluate(run_of(load))
    assert result.value == pytest.approx(50.0)
    assert not result.passed
    assert not result.inconclusive


def test_latency_growth_over_its_bound_by_a_few_stalled_requests_is_inconclusive() -> None:
    # a 60 ms stall of the machine delays 3 requests of the fault window, nothing else grew
    load = _two_windows([0.010] * 150, [0.010] * 147 + [0.070] * 3)
    slo = LatencyGrowth("growth", max=2.0, window="fault", baseline="before", tag="auth")
    result = slo.evaluate(run_of(load))
    assert result.value == pytest.approx(7.0)
    assert not result.passed
    assert result.inconclusive is not None
    assert "by no more than the noise" in result.inconclusive


def test_latency_growth_with_too_few_requests_is_a_harness_problem() -> None:
    load = _two_windows([0.010] * 99, [0.010] * 150)
    slo = LatencyGrowth("growth", max=2.0, window="fault", baseline="before", tag="auth")
    result = slo.evaluate(run_of(load))
    assert result.problem == (
        "insufficient data: 99 'auth' requests in window 'before', need >= 100 to estimate a p99"
    )
