"""Reports: the JSON document follows its shipped schema, the HTML page stands alone."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from rich.console import Console

from chaos.engine import ArmResult, FaultRecord, ScenarioResult
from chaos.report import SCHEMA_VERSION, build_report, load_schema, render_table, write_reports
from chaos.scenario import GaugeSeries, RunData, judge_guarded, judge_naive
from tests.chaos.test_scenario import load_result, make_scenario

VALIDATOR = jsonschema.Draft202012Validator


def _arm(name: str, role: str, false_429: float, seed: int) -> ArmResult:
    scenario = make_scenario()
    rng = np.random.default_rng(seed)
    scheduled = np.arange(0, 10, 0.05)
    in_fault = (scheduled >= 2) & (scheduled < 8)
    outcomes = ["false_429" if fault and rng.random() < false_429 else "ok" for fault in in_fault]
    latency = list(rng.exponential(0.005, len(scheduled)))
    latency[-1] = math.nan  # one request never sent
    outcomes[-1] = "overflow"
    load = load_result(list(scheduled), outcomes, latency)
    gauges = {"conns": GaugeSeries(np.arange(0, 10, 0.5), np.append(np.arange(19.0), np.nan))}
    run = RunData(load, gauges, {w.name: w for w in scenario.windows})
    judge = judge_naive if role == "naive" else judge_guarded
    judged = judge(scenario, run)
    return ArmResult(
        name=name, role=role, verdict=judged.verdict, slos=judged.slos,
        signature=judged.signature, load=load,
        gauges=gauges, wall_time=11.0,
        faults=(FaultRecord(2.0, 2.001, "AddToxic", "redis", "add latency"),),
    )  # fmt: skip


def _result() -> ScenarioResult:
    return ScenarioResult(
        scenario=make_scenario(),
        seed=4,
        scale=1.0,
        arms=[_arm("naive", "naive", 0.95, 1), _arm("guarded", "guarded", 0.0, 2)],
        toxiproxy_url="http://127.0.0.1:8474",
        toxiproxy_version="2.12.0",
        toxiproxy_embedded=True,
    )


def test_the_shipped_schema_is_a_valid_json_schema() -> None:
    schema = load_schema()
    VALIDATOR.check_schema(schema)
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION


def test_report_document_follows_the_schema_and_holds_every_figure() -> None:
    result = _result()
    document = build_report([result], exit_status=0, seed=4, scale=1.0)
    VALIDATOR(load_schema()).validate(document)
    json.dumps(document, allow_nan=False)
    assert document["versions"]["toxiproxy"] == "2.12.0"
    assert document["seed"] == 4
    (scenario,) = document["scenarios"]
    naive, guarded = scenario["arms"]
    assert (naive["verdict"], guarded["verdict"]) == ("reproduced", "mitigated")
    assert [w["name"] for w in naive["windows"]] == ["before", "fault"]
    assert len(naive["timeline"]) == 10
    assert sum(b["requests"] for b in naive["timeline"]) == 200
    assert naive["load"]["outcomes"]["overflow"] == 1
    assert naive["load"]["sent"] == 199
    assert naive["signature"][0]["passed"] is True
    assert {"p50", "p90", "p99", "max", "count"} <= naive["load"]["lag_ms"].keys()
    assert naive["trustworthy"] is True
    assert naive["gauges"]["conns"]["values"][-1] is None
    assert naive["gauges"]["conns"]["max"] == 18
    assert scenario["breaks"] == ["no-false-429"]


def test_a_document_with_a_missing_field_is_rejected_by_the_schema() -> None:
    document = build_report([_result()], exit_status=0, seed=4, scale=1.0)
    del document["scenarios"][0]["arms"][0]["slos"][0]["bound"]
    with pytest.raises(jsonschema.ValidationError, match="'bound' is a required property"):
        VALIDATOR(load_schema()).validate(document)


def test_html_report_is_self_contained(tmp_path: Path) -> None:
    result = _result()
    document = build_report([result], exit_status=0, seed=4, scale=1.0)
    json_path, html_path = write_reports(document, tmp_path / "out")
    assert json.loads(json_path.read_text()) == document
    page = html_path.read_text()
    assert page.count("data:image/png;base64,") == 1
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<script" not in page
    for text in ("reproduced", "mitigated", "no-false-429", "demo incident"):
        assert text in page


def test_reports_are_written_as_report_json_and_report_html_in_the_folder_made_for_them(
    tmp_path: Path,
) -> None:
    document = build_report([_result()], exit_status=0, seed=4, scale=1.0)
    folder = tmp_path / "runs" / "today"  # neither exists yet
    assert write_reports(document, folder) == (folder / "report.json", folder / "report.html")
    assert sorted(path.name for path in folder.iterdir()) == ["report.html", "report.json"]
    # again into the same folder (a CI job's fixed path): both are replaced
    write_reports(document, folder)
    assert json.loads((folder / "report.json").read_text()) == document
    assert (folder / "report.html").read_text().startswith("<!doctype html>")


def test_terminal_table_shows_verdicts_and_slo_values() -> None:
    console = Console(width=200, record=True)
    console.print(render_table(build_report([_result()], exit_status=0, seed=4, scale=1.0)))
    text = console.export_text()
    assert "reproduced" in text
    assert "mitigated" in text
    assert "FAIL no-false-429" in text
    assert "(must fail)" in text
    assert "PASS p99" in text


def test_window_labels_that_would_overlap_get_their_own_rows() -> None:
    from chaos.report._plot import _label_rows
    from chaos.scenario import Window

    windows = [
        Window("fault", 30.0, 55.0),
        Window("fault-onset", 30.0, 37.5),
        Window("fault-open", 37.5, 55.0),
        Window("later", 70.0, 80.0),
        Window("whole", 0.0, 100.0),
        Window("far", 95.0, 100.0),
    ]
    assert _label_rows(windows, duration=100.0) == [0, 1, 2, 0, 0, 0]


def test_each_gauge_gets_a_row_of_its_own_with_its_whole_run_bounds() -> None:
    import dataclasses

    from chaos.report._json import _gauge_bounds
    from chaos.report._plot import _wrapped, plot_scenario
    from chaos.scenario import Gauge

    scenario = dataclasses.replace(
        make_scenario(),
        hypothesis=(
            *make_scenario().hypothesis,
            Gauge("floor", "engines_in_service", min=6),
            Gauge("windowed", "engines_in_service", min=7, window="fault"),
        ),
    )
    assert _gauge_bounds(scenario) == {"engines_in_service": [6.0]}
    assert _wrapped("conns") == "conns"
    assert _wrapped("engines_in_service") == "engines_in\nservice"
    result = _result()
    for arm in result.arms:
        arm.gauges = {**arm.gauges, "engines_in_service": GaugeSeries(np.arange(3.0), np.ones(3))}
    result.scenario = scenario
    (doc,) = build_report([result], exit_status=0, seed=4, scale=1.0)["scenarios"]
    assert doc["gauge_bounds"] == {"engines_in_service": [6.0]}
    png = plot_scenario(doc)
    assert png.startswith(b"\x89PNG")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert height > width / 2  # 2 rows of requests and latency, then 2 rows of gauges


def test_a_gauge_row_fits_every_arms_samples_and_bounds() -> None:
    from chaos.report._plot import gauge_limits

    assert gauge_limits([[0.0, 0.0], [0.0, 80.0, None]], [48.0]) == (0.0, 84.0)
    assert gauge_limits([[0.0, 0.0], [0.0, float("nan")]], []) == (0.0, 1.0)
    assert gauge_limits([[0.0, 5.0]], [100.0]) == (0.0, 105.0)
    assert gauge_limits([[-3.0, 5.0]], []) is None  # a signed gauge keeps matplotlib's range
    assert gauge_limits([], []) is None
