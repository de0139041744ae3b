"""A measurement the harness cannot trust is never a failed guard (chaos/scenario/_verdicts.py).

Synthetic runs, exact and instant: a late load, a late fault, a latency over its bound only by
the noise of its window or only by the generator's own lateness, a gauge with gaps. Each is
``error`` with the reason in ``untrusted``, where the value alone said ``failed``; and the same
figures with the machine's interference removed are judged as before.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from chaos.load import LoadResult
from chaos.scenario import (
    AddedLatency,
    Gauge,
    GaugeSeries,
    LatencyPercentile,
    OutcomeRatio,
    Premise,
    RunData,
    ScenarioError,
    Window,
    judge_guarded,
    judge_naive,
    max_timeline_slip,
)
from chaos.scenario._noise import SIGNIFICANCE, excess_p_value
from tests.chaos.test_scenario import load_result, make_scenario

WINDOWS = {"before": Window("before", 0, 2), "fault": Window("fault", 2, 8)}


def _run(
    load: LoadResult,
    gauges: dict[str, GaugeSeries] | None = None,
    *,
    fault_delays: tuple[float, ...] = (),
) -> RunData:
    return RunData(load, gauges or {}, WINDOWS, gauge_interval=0.1, fault_delays=fault_delays)


def _late(load: LoadResult, lag: npt.NDArray[np.float64]) -> LoadResult:
    """``load`` with every request started ``lag`` late (its service time unchanged)."""
    load.started = load.scheduled + lag
    load.finished = load.finished + lag
    return load


def _steady(n: int = 400, latency: float = 0.01) -> LoadResult:
    return load_result(list(np.linspace(0, 9.9, n)), ["ok"] * n, [latency] * n)


# -- the timeline ----------------------------------------------------------------------------


def test_the_slip_allowed_is_a_share_of_the_shortest_decisive_window_never_under_5_ms() -> None:
    scenario = make_scenario(
        windows=(Window("before", 0, 2), Window("fault", 2, 8), Window("onset", 2, 2.5)),
        hypothesis=(
            OutcomeRatio("no-false-429", "false_429", max=0.0, window="fault"),
            LatencyPercentile("p99", max=0.1, window="onset"),
        ),
    )
    assert max_timeline_slip(scenario, "guarded") == pytest.approx(0.05 * 0.5)  # 'onset'
    assert max_timeline_slip(scenario, "naive") == pytest.approx(0.05 * 6)  # breaks: 'fault'
    short = make_scenario(windows=(Window("before", 0, 2), Window("fault", 2, 2.05)))
    assert max_timeline_slip(short) == pytest.approx(0.005)


def test_a_late_load_makes_a_failing_guarded_arm_untrusted_not_failed() -> None:
    scenario = make_scenario()  # p99 latency in 'fault' at most 100 ms
    load = _late(_steady(latency=0.15), np.full(400, 0.4))  # 400 ms late, > 300 ms allowed
    judged = judge_guarded(scenario, _run(load))
    assert judged.verdict == "error"
    assert len(judged.untrusted) == 1
    assert "the load ran late: scheduling lag p99 400.0 ms > 300.0 ms" in judged.untrusted[0]
    on_time = judge_guarded(scenario, _run(_late(_steady(latency=0.15), np.zeros(400))))
    assert (on_time.verdict, on_time.untrusted) == ("failed", ())


def test_a_late_load_makes_a_naive_arm_untrusted_too() -> None:
    outcomes = ["false_429"] * 400
    load = load_result(list(np.linspace(0, 9.9, 400)), outcomes, [0.01] * 400)
    judged = judge_naive(make_scenario(), _run(_late(load, np.full(400, 0.4))))
    assert judged.verdict == "error"
    assert judged.untrusted


def test_a_fault_applied_late_makes_the_arm_untrusted() -> None:
    judged = judge_guarded(make_scenario(), _run(_steady(), fault_delays=(0.001, 0.5)))
    assert judged.verdict == "error"
    assert judged.untrusted == (
        "a fault was applied 500.0 ms late > 300.0 ms (the engine's loop was held up)",
    )
    assert judge_guarded(make_scenario(), _run(_steady(), fault_delays=(0.25,))).verdict == (
        "mitigated"
    )


def test_a_latency_over_its_bound_only_by_the_generators_lag_is_inconclusive() -> None:
    # the service answers in 50 ms; 1 % of the requests started 80 ms late (p99 lag 80 ms
    # is within the 300 ms the timeline may slip): from the planned start, p99 is 130 ms
    lag = np.zeros(400)
    lag[::50] = 0.08
    run = _run(_late(_steady(latency=0.05), lag))
    result = LatencyPercentile("p99", max=0.1, window="fault").evaluate(run)
    assert (result.passed, result.inconclusive is not None) == (False, True)
    assert "from the actual start it is 50.0 ms" in (result.inconclusive or "")
    assert judge_guarded(make_scenario(), run).verdict == "error"
    served = LatencyPercentile("p99", max=0.1, window="fault", measure_from="started")
    assert served.evaluate(run).passed


# -- the added latency's own noise ---------------------------------------------------------


def _stalled_window(extra: float, share: float, stalled: tuple[int, int]) -> RunData:
    """650 guarded and 390 control requests interleaved over 'fault', all 1 ms but for
    ``stalled`` (guarded, control) hit by a stall of 5 to 20 ms; the guard adds ``extra`` to
    ``share`` of its requests."""
    rng = np.random.default_rng(7)
    guarded = np.full(650, 0.001)
    control = np.full(390, 0.001)
    guarded[rng.choice(650, stalled[0], replace=False)] += rng.uniform(0.005, 0.02, stalled[0])
    control[rng.choice(390, stalled[1], replace=False)] += rng.uniform(0.005, 0.02, stalled[1])
    guarded[rng.choice(650, round(650 * share), replace=False)] += extra
    tags = (["normal", "control", "normal", "control", "normal", "control", "normal", "normal"]
            * 130)  # fmt: skip
    latency, g, c = [], iter(guarded), iter(control)
    for tag in tags:
        latency.append(next(c) if tag == "control" else next(g))
    load = load_result(list(np.linspace(2, 7.99, len(tags))), ["ok"] * len(tags), latency, tags)
    return _run(load)


OPEN_BOUND = AddedLatency("open-p99-added", max=0.002, window="fault", tag="normal")


def test_an_added_latency_over_its_bound_by_a_stall_is_inconclusive_not_a_failure() -> None:
    # a stall hit 11 guarded and 2 control requests: no guard involved, and yet p99 differs
    run = _stalled_window(extra=0.0, share=0.0, stalled=(11, 2))
    result = OPEN_BOUND.evaluate(run)
    assert result.value is not None
    assert result.value > 0.002
    assert not result.passed
    assert result.inconclusive is not None
    assert "by no more than the noise of window 'fault'" in result.inconclusive
    scenario = make_scenario(hypothesis=(OPEN_BOUND,), breaks=("open-p99-added",))
    judged = judge_guarded(scenario, run)
    assert judged.verdict == "error"
    assert judged.untrusted == (f"SLO 'open-p99-added': {result.inconclusive}",)


def test_an_added_latency_well_beyond_the_noise_fails() -> None:
    # the same stall, and the guard adds 10 ms to 3 % of its requests
    run = _stalled_window(extra=0.010, share=0.03, stalled=(11, 2))
    result = OPEN_BOUND.evaluate(run)
    assert (result.passed, result.inconclusive) == (False, None)
    scenario = make_scenario(hypothesis=(OPEN_BOUND,), breaks=("open-p99-added",))
    assert judge_guarded(scenario, run).verdict == "failed"


def test_the_permutation_test_is_seeded_and_in_range() -> None:
    rng = np.random.default_rng(3)
    same_a, same_b = rng.exponential(0.001, 600), rng.exponential(0.001, 400)
    first = excess_p_value(same_a, same_b, q=99, bound=0.0)
    assert first == excess_p_value(same_a, same_b, q=99, bound=0.0)
    assert SIGNIFICANCE < first <= 1.0
    shifted = excess_p_value(same_a + 0.01, same_b, q=99, bound=0.002)
    assert shifted == pytest.approx(1 / 2001)
    never_sent = np.full(10, np.nan)
    assert excess_p_value(never_sent, never_sent, q=99, bound=0.0) == 1.0
    with pytest.raises(ValueError, match="at least one request"):
        excess_p_value(np.empty(0), same_b, q=99, bound=0.0)


# -- gauges ------------------------------------------------------------------------------------


def _gauge(t: list[float], values: list[float]) -> dict[str, GaugeSeries]:
    return {"conns": GaugeSeries(np.array(t), np.array(values))}


def test_a_gauge_that_holds_with_a_gap_in_its_window_is_inconclusive() -> None:
    times = [float(t) for t in np.arange(2.0, 8.0, 0.1) if not 4.0 <= t < 4.5]
    run = _run(_steady(), _gauge(times, [1.0] * len(times)))
    result = Gauge("cap", "conns", max=8, window="fault").evaluate(run)
    assert result.passed
    assert result.inconclusive is not None
    assert "went 0.60 s without a sample in window 'fault'" in result.inconclusive
    scenario = make_scenario(hypothesis=(Gauge("cap", "conns", max=8, window="fault"),),
                             breaks=("cap",))  # fmt: skip
    assert judge_guarded(scenario, run).verdict == "error"


def test_a_gauge_sample_beyond_the_bound_fails_whatever_is_missing() -> None:
    times = [2.0, 2.1, 6.0]
    run = _run(_steady(), _gauge(times, [1.0, 9.0, 1.0]))
    result = Gauge("cap", "conns", max=8, window="fault").evaluate(run)
    assert (result.passed, result.inconclusive) == (False, None)


def test_a_gauge_sampled_on_time_holds() -> None:
    times = [float(t) for t in np.arange(2.0, 8.0, 0.1)]
    missing = [1.0] * len(times)
    missing[10] = float("nan")  # one sample late: tolerated
    run = _run(_steady(), _gauge(times, missing))
    result = Gauge("cap", "conns", max=8, window="fault").evaluate(run)
    assert (result.passed, result.inconclusive) == (True, None)


# -- which doubts matter -----------------------------------------------------------------------


def test_a_naive_arm_is_untrusted_only_by_doubts_its_verdict_depends_on() -> None:
    run = _stalled_window(extra=0.0, share=0.0, stalled=(11, 2))
    # every request got a false 429 (the incident), and an added latency is inconclusive
    run.load.outcome[:] = 0
    run.load.outcome_names[:] = ["false_429"]
    breaks = OutcomeRatio("no-false-429", "false_429", max=0.0, window="fault")
    scenario = make_scenario(hypothesis=(breaks, OPEN_BOUND), breaks=("no-false-429",))
    assert judge_naive(scenario, run).verdict == "reproduced"
    decisive = make_scenario(hypothesis=(breaks, OPEN_BOUND), breaks=("open-p99-added",))
    judged = judge_naive(decisive, run)
    assert judged.verdict == "error"
    assert "open-p99-added" in judged.untrusted[0]


def test_a_guard_shown_broken_fails_even_when_another_slo_is_inconclusive() -> None:
    run = _stalled_window(extra=0.0, share=0.0, stalled=(11, 2))
    run.load.outcome[:] = 0
    run.load.outcome_names[:] = ["false_429"]
    breaks = OutcomeRatio("no-false-429", "false_429", max=0.0, window="fault")
    scenario = make_scenario(hypothesis=(breaks, OPEN_BOUND), breaks=("no-false-429",))
    judged = judge_guarded(scenario, run)
    assert (judged.verdict, judged.untrusted) == ("failed", ())


# -- premises ----------------------------------------------------------------------------------

BACK = OutcomeRatio("back", "ok_degraded", max=0.5, window="fault")
"""The guard is back on its primary: at most half the window decided by the fallback."""

HEALTHY = Premise(
    Gauge("healthy", "round_trip", max=0.02, q=90, window="fault", unit="s"), covers=("back",)
)
"""Nine fresh round trips to the dependency in ten within 20 ms, with no fault applied."""


def _recovering(degraded: float, round_trips: list[float]) -> RunData:
    n = 400
    bad = round(n * degraded)
    outcomes = ["ok"] * (n - bad) + ["ok_degraded"] * bad
    load = load_result(list(np.linspace(2, 7.99, n)), outcomes, [0.001] * n)
    times = list(np.linspace(2, 7.9, len(round_trips)))
    return _run(load, {"round_trip": GaugeSeries(np.array(times), np.array(round_trips))})


def test_a_gauge_percentile_reads_most_samples_not_the_extreme() -> None:
    run = _recovering(0.0, [0.001] * 54 + [0.05] * 6)  # one sample in ten is slow
    p90 = Gauge("p90", "round_trip", max=0.02, q=90, window="fault", unit="s").evaluate(run)
    assert (p90.value, p90.passed, p90.inconclusive) == (0.001, True, None)
    assert p90.description == "p90 of gauge 'round_trip' <= 0.02, window 'fault'"
    peak = Gauge("max", "round_trip", max=0.02, window="fault").evaluate(run)
    assert (peak.value, peak.passed) == (0.05, False)
    floor = Gauge("p10", "round_trip", min=0.002, q=90, window="fault").evaluate(run)
    assert (floor.value, floor.passed) == (0.001, False)


def test_a_failure_a_broken_premise_covers_is_inconclusive_not_a_guard_failure() -> None:
    scenario = make_scenario(hypothesis=(BACK,), breaks=("back",), premises=(HEALTHY,))
    slow_machine = _recovering(0.8, [0.001] * 30 + [0.06] * 30)  # half the round trips slow
    judged = judge_guarded(scenario, slow_machine)
    assert judged.verdict == "error"
    (premise,) = judged.premises
    assert (premise.name, premise.value, premise.passed) == ("healthy", 0.06, False)
    assert judged.untrusted == (
        "SLO 'back': premise 'healthy' did not hold (p90 of gauge 'round_trip' <= 0.02, window "
        "'fault': measured 60.0 ms): the environment, not the guard, may have decided it",
    )


def test_a_failure_under_a_premise_that_held_is_the_guards() -> None:
    scenario = make_scenario(hypothesis=(BACK,), breaks=("back",), premises=(HEALTHY,))
    judged = judge_guarded(scenario, _recovering(0.8, [0.001] * 60))
    assert (judged.verdict, judged.untrusted) == ("failed", ())
    assert judged.premises[0].passed


def test_a_broken_premise_leaves_a_pass_and_uncovered_slos_as_they_are() -> None:
    uncovered = OutcomeRatio("few-degraded", "ok_degraded", max=0.1, window="fault")
    scenario = make_scenario(hypothesis=(BACK, uncovered), breaks=("back",), premises=(HEALTHY,))
    slow = [0.06] * 60
    assert judge_guarded(scenario, _recovering(0.0, slow)).verdict == "mitigated"
    assert judge_guarded(scenario, _recovering(0.3, slow)).verdict == "failed"  # uncovered
    only_back = make_scenario(hypothesis=(BACK,), breaks=("back",), premises=(HEALTHY,))
    judged = judge_guarded(only_back, _recovering(0.8, []))
    assert judged.verdict == "error"
    assert "premise 'healthy' could not be measured" in judged.untrusted[0]


def test_a_premise_must_cover_slos_of_the_scenario() -> None:
    with pytest.raises(ScenarioError, match=r"premises\[0\]\.covers: 'gone' is not an SLO"):
        make_scenario(premises=(Premise(HEALTHY.check, covers=("gone",)),))
    with pytest.raises(ScenarioError, match=r"premises\[0\]\.check\.window: 'later'"):
        make_scenario(premises=(Premise(Gauge("g", "x", max=1, window="later"), covers=("p99",)),))


def test_an_added_latency_measured_again_pools_the_earlier_attempts_requests() -> None:
    alone = _stalled_window(extra=0.0, share=0.0, stalled=(11, 2))
    assert OPEN_BOUND.evaluate(alone).inconclusive is not None
    quieter = [_stalled_window(extra=0.0, share=0.0, stalled=(3, 2)).load for _ in range(2)]
    pooled = RunData(alone.load, {}, WINDOWS, gauge_interval=0.1, earlier=tuple(quieter))
    result = OPEN_BOUND.evaluate(pooled)
    assert (result.passed, result.inconclusive) == (True, None)
    assert result.description.endswith(", requests of 3 attempts pooled")
    # a guard that does add latency is not pooled into a pass
    adding = _stalled_window(extra=0.010, share=0.03, stalled=(11, 2))
    also_adding = RunData(adding.load, {}, WINDOWS, earlier=(adding.load,))
    assert OPEN_BOUND.evaluate(also_adding).passed is False
