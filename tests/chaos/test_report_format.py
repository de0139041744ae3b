"""The text every report writes a value in (chaos.report._format), pinned on its own."""

from __future__ import annotations

import pytest

from chaos.report._format import counts_text, format_value, must_break, slo_line


@pytest.mark.parametrize("kind", ["SuccessRatio", "OutcomeRatio"])
def test_a_share_of_requests_is_written_as_a_percentage(kind: str) -> None:
    slo = {"kind": kind, "unit": ""}
    assert format_value(0.98765, slo) == "98.77%"
    assert format_value(0.0, slo) == "0.00%"


def test_a_value_is_written_in_its_unit() -> None:
    assert format_value(0.1234, {"kind": "LatencyPercentile", "unit": "s"}) == "123.4 ms"
    assert format_value(12.345, {"kind": "OutcomeRate", "unit": "req/s"}) == "12.3/s"
    assert format_value(1.5, {"kind": "GaugeMax", "unit": "x"}) == "1.50x"
    assert format_value(3.0, {"kind": "GaugeMax", "unit": ""}) == "3"


def test_nothing_measured_is_written_n_a() -> None:
    assert format_value(None, {"kind": "SuccessRatio", "unit": ""}) == "n/a"


def test_an_slo_line_says_its_mark_value_op_bound_and_whether_it_must_fail() -> None:
    slo = {
        "kind": "SuccessRatio",
        "unit": "",
        "name": "success",
        "value": 0.5,
        "op": ">=",
        "bound": 0.99,
        "passed": False,
    }
    assert slo_line(slo) == "FAIL success: 50.00% >= 99.00%"
    assert slo_line({**slo, "passed": True}, must_break=True) == (
        "PASS success: 50.00% >= 99.00% (must fail)"
    )
    assert slo_line({**slo, "inconclusive": True}) == "INCONCLUSIVE success: 50.00% >= 99.00%"


def test_counts_are_written_most_frequent_first() -> None:
    assert counts_text({"false_429": 12, "ok": 900, "error": 3}) == "ok 900, false_429 12, error 3"
    assert counts_text({}) == ""


def test_only_a_naive_arm_must_break_the_scenarios_breaks() -> None:
    scenario = {"breaks": ["success", "p99"]}
    assert must_break(scenario, {"role": "naive"}) == {"success", "p99"}
    assert must_break(scenario, {"role": "guarded"}) == set()
