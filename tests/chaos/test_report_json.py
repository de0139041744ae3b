"""The JSON document of a run (``build_report``, ``timeline_buckets``, ``write_json``), built
from small hand-made runs: every figure, its unit, its rounding, and what it counts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chaos.engine import ArmResult, ScenarioResult
from chaos.load import LoadResult
from chaos.report import build_report, write_json
from chaos.report._json import timeline_buckets
from chaos.scenario import GaugeSeries, LatencyPercentile, SLOResult, Window
from tests.chaos.test_scenario import load_result, make_scenario

NONE_MEASURED = {"count": 0, "p50": None, "p90": None, "p99": None, "max": None}
"""Percentiles of no request at all."""


def _run(
    scheduled: Sequence[float],
    latency: Sequence[float],
    *,
    lag: Sequence[float] | None = None,
    outcomes: Sequence[str] | None = None,
    duration: float = 10.0,
) -> LoadResult:
    """A run of requests scheduled at ``scheduled``, started ``lag`` later (none by default),
    finished ``latency`` after their scheduled start (NaN: never sent, ``overflow``)."""
    sched = np.array(scheduled, dtype=np.float64)
    lat = np.array(latency, dtype=np.float64)
    started = sched + (np.zeros(len(sched)) if lag is None else np.array(lag, dtype=np.float64))
    names = list(outcomes) if outcomes is not None else ["ok"] * len(sched)
    names = ["overflow" if math.isnan(x) else name for x, name in zip(lat, names, strict=True)]
    outcome_names = list(dict.fromkeys(names))
    return LoadResult(
        t0=0.0,
        duration=duration,
        scheduled=sched,
        started=np.where(np.isnan(lat), np.nan, started),
        finished=sched + lat,
        status=np.zeros(len(sched), dtype=np.int16),
        outcome=np.array([outcome_names.index(n) for n in names], dtype=np.int16),
        tag=np.zeros(len(sched), dtype=np.int16),
        outcome_names=outcome_names,
        tag_names=[""],
        errors=["one connection reset"],
    )


SCENARIO = make_scenario(
    windows=(Window("before", 0, 2), Window("fault", 2, 8), Window("late", 9, 10)),
    hypothesis=(
        *make_scenario().hypothesis,
        LatencyPercentile("p99-late", max=0.1, window="late"),
    ),
)
"""The demo scenario with a window of 1 s the guarded arm's hypothesis measures: a guarded arm
may run 50 ms late (5% of 1 s), a naive arm 300 ms (5% of the 6 s fault window its breaks and
signature measure)."""


def _result(*arms: ArmResult) -> ScenarioResult:
    return ScenarioResult(
        scenario=SCENARIO, seed=4, scale=1.0, arms=list(arms),
        toxiproxy_url="http://127.0.0.1:8474", toxiproxy_version="2.12.0",
        toxiproxy_embedded=True,
    )  # fmt: skip


def _arm_doc(arm: ArmResult) -> dict[str, Any]:
    (scenario,) = build_report([_result(arm)], exit_status=0, seed=4, scale=1.0)["scenarios"]
    (doc,) = scenario["arms"]
    return dict(doc)


# the run


def test_max_trusted_lag_is_in_milliseconds() -> None:
    assert build_report([], exit_status=0, seed=1, scale=1.0)["max_trusted_lag_ms"] == 5.0


def test_the_project_version_is_the_installed_distributions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = metadata.version

    def version(name: str) -> str:
        return "9.8.7" if name == "resilient-chaos" else real(name)

    monkeypatch.setattr(metadata, "version", version)
    document = build_report([], exit_status=0, seed=1, scale=1.0)
    assert document["versions"]["project"] == "9.8.7"


def test_write_json_writes_the_document_indented_by_two_with_a_final_newline(
    tmp_path: Path,
) -> None:
    path = tmp_path / "report.json"
    write_json({"seed": 1, "scenarios": [{"name": "a"}]}, path)
    assert path.read_text("utf-8") == (
        '{\n  "seed": 1,\n  "scenarios": [\n    {\n      "name": "a"\n    }\n  ]\n}\n'
    )


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_write_json_refuses_a_value_json_has_no_word_for(tmp_path: Path, value: float) -> None:
    path = tmp_path / "report.json"
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        write_json({"value": value}, path)
    assert list(tmp_path.iterdir()) == []


# an arm


def test_an_arms_wall_time_is_rounded_to_the_millisecond() -> None:
    arm = ArmResult("naive", "naive", "error", wall_time=12.34567)
    assert _arm_doc(arm)["wall_time_s"] == 12.346


def test_an_arm_may_run_late_by_5_percent_of_the_shortest_window_its_role_is_judged_on() -> None:
    naive = _arm_doc(ArmResult("naive", "naive", "error"))
    guarded = _arm_doc(ArmResult("guarded", "guarded", "error"))
    assert naive["max_timeline_slip_ms"] == pytest.approx(300.0)
    assert guarded["max_timeline_slip_ms"] == pytest.approx(50.0)


def _slo(value: float | None) -> SLOResult:
    return SLOResult(
        "p99", "LatencyPercentile", "p99 latency", "fault", value, "<=", 0.1, "s", True
    )


def test_an_slo_value_json_cannot_hold_is_null() -> None:
    arm = ArmResult(
        "guarded", "guarded", "mitigated",
        slos=(_slo(0.25), _slo(None), _slo(math.inf)),
        signature=(_slo(-math.inf),),
        premises=(_slo(math.nan),),
    )  # fmt: skip
    doc = _arm_doc(arm)
    assert [slo["value"] for slo in doc["slos"]] == [0.25, None, None]
    assert [slo["value"] for slo in (*doc["signature"], *doc["premises"])] == [None, None]


def test_gauge_samples_are_rounded_to_six_places_and_a_missing_one_is_null() -> None:
    series = GaugeSeries(np.array([0.0, 0.1234567, 0.5]), np.array([2.3456789, np.nan, -1.0]))
    doc = _arm_doc(ArmResult("guarded", "guarded", "error", gauges={"conns": series}))
    assert doc["gauges"] == {
        "conns": {"t": [0.0, 0.123457, 0.5], "values": [2.345679, None, -1.0], "max": 2.3456789,
                  "min": -1.0},
    }  # fmt: skip


# the load of an arm

LOAD = _run(
    scheduled=[0.0, 1.0, 2.0, 5.0, 8.0, 9.5],
    latency=[0.001, 0.002, 0.004, 0.003, 0.005, math.nan],
    outcomes=["ok", "ok", "false_429", "ok", "ok", "overflow"],
)
"""Six requests: two before the fault, one on its start, one in it, one on its end, and one in
the late window that was never sent."""


def test_each_window_counts_the_requests_scheduled_from_its_start_to_before_its_end() -> None:
    doc = _arm_doc(ArmResult("guarded", "guarded", "mitigated", load=LOAD))
    assert doc["windows"] == [
        {"name": "before", "start": 0, "end": 2, "requests": 2, "outcomes": {"ok": 2},
         "latency_ms": {"count": 2, "p50": 1.5, "p90": 1.9, "p99": 1.99, "max": 2.0}},
        {"name": "fault", "start": 2, "end": 8, "requests": 2,
         "outcomes": {"ok": 1, "false_429": 1},
         "latency_ms": {"count": 2, "p50": 3.5, "p90": 3.9, "p99": 3.99, "max": 4.0}},
        {"name": "late", "start": 9, "end": 10, "requests": 1, "outcomes": {"overflow": 1},
         "latency_ms": NONE_MEASURED},
    ]  # fmt: skip


def test_the_load_of_an_arm_in_milliseconds() -> None:
    hundred = np.arange(1, 101) / 1000  # 1 ms to 100 ms
    load = _run(
        scheduled=[i / 20 for i in range(101)],
        latency=[*hundred, math.nan],
        lag=[0.0012344] * 101,
    )
    doc = _arm_doc(ArmResult("guarded", "guarded", "mitigated", load=load))
    lag = {"count": 100, "p50": 1.234, "p90": 1.234, "p99": 1.234, "max": 1.234}
    assert doc["load"] == {
        "planned": 101,
        "sent": 100,
        "event_loop": "asyncio",
        "lag_ms": lag,
        "outcomes": {"ok": 100, "overflow": 1},
        "latency_ms": {"count": 100, "p50": 50.5, "p90": 90.1, "p99": 99.01, "max": 100.0},
        "service_time_ms": {"count": 100, "p50": 49.266, "p90": 88.866, "p99": 97.776,
                            "max": 98.766},
        "errors": ["one connection reset"],
    }  # fmt: skip


def test_one_request_is_its_own_every_percentile() -> None:
    doc = _arm_doc(ArmResult("guarded", "guarded", "error", load=_run([0.5], [0.0123456])))
    latency = {"count": 1, "p50": 12.346, "p90": 12.346, "p99": 12.346, "max": 12.346}
    assert doc["load"]["latency_ms"] == latency
    assert doc["timeline"][0] == {
        "t": 0.0, "requests": 1, "outcomes": {"ok": 1}, "p50_ms": 12.346, "p99_ms": 12.346,
    }  # fmt: skip


def test_an_arm_with_no_request_sent_has_no_percentile() -> None:
    doc = _arm_doc(ArmResult("guarded", "guarded", "error", load=_run([0.5], [math.nan])))
    assert doc["load"]["lag_ms"] == NONE_MEASURED
    assert doc["load"]["latency_ms"] == NONE_MEASURED
    assert doc["load"]["sent"] == 0


# the timeline


def test_the_timeline_has_a_bucket_per_width_each_with_its_start_counts_and_latency() -> None:
    load = _run(
        scheduled=[0.0, 0.1, 0.2, 0.3, 0.5, 1.0, 1.2],
        latency=[0.001, 0.002, 0.003, 0.004, math.nan, 0.010, 0.020],
        duration=1.5,
    )
    assert timeline_buckets(load, 0.5) == [
        {"t": 0.0, "requests": 4, "outcomes": {"ok": 4}, "p50_ms": 2.5, "p99_ms": 3.97},
        {"t": 0.5, "requests": 1, "outcomes": {"overflow": 1}, "p50_ms": None, "p99_ms": None},
        {"t": 1.0, "requests": 2, "outcomes": {"ok": 2}, "p50_ms": 15.0, "p99_ms": 19.9},
    ]  # fmt: skip


def test_a_request_at_or_past_the_end_of_the_run_is_in_the_last_bucket() -> None:
    load = _run(scheduled=[0.5, 1.5, 2.0, 2.5], latency=[0.001] * 4, duration=2.0)
    assert [b["requests"] for b in timeline_buckets(load, 1.0)] == [1, 3]


def test_a_run_shorter_than_a_bucket_has_one_bucket() -> None:
    load = _run(scheduled=[0.1], latency=[0.001], duration=0.5)
    assert [b["t"] for b in timeline_buckets(load, 1.0)] == [0.0]


def test_bucket_starts_are_rounded_to_the_microsecond() -> None:
    load = _run(scheduled=[0.1], latency=[0.001], duration=1.0)
    assert [b["t"] for b in timeline_buckets(load, 1 / 3)] == [0.0, 0.333333, 0.666667]


def test_a_run_a_billionth_of_a_bucket_past_a_whole_number_of_buckets_has_no_more() -> None:
    # floating-point error, not a bucket more; 1.5 billionths of a bucket past is one more
    for past, count in ((0.5e-9, 3), (1.5e-9, 4)):
        load = _run(scheduled=[0.1], latency=[0.001], duration=3.0 + past)
        assert len(timeline_buckets(load, 1.0)) == count, past


def test_evenly_spaced_requests_fill_every_bucket_alike_whatever_the_bucket_width() -> None:
    # 100 requests a second for 2 s; 0.1 s is no binary fraction: 1.0 // 0.1 is 9.0 in floating
    # point, which put the request at 1.0 s in the bucket before its own
    scheduled = np.arange(200) / 100
    load = load_result(list(scheduled), ["ok"] * 200, [0.001] * 200, duration=2.0)
    for bucket, each in ((0.1, 10), (0.2, 20), (0.05, 5)):
        buckets = timeline_buckets(load, bucket)
        assert [b["requests"] for b in buckets] == [each] * round(2.0 / bucket), bucket
