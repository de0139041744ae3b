"""JUnit XML (chaos run --junit, chaos report --junit): valid against Jenkins' JUnit schema,
one test case per scenario and arm, a failed SLO a <failure> with its value and bound, an
untrusted or broken arm an <error>; whatever a user's scenario is called."""

from __future__ import annotations

import os
import stat
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from chaos.report import junit_xml, write_junit
from chaos.report._atomic import FILE_MODE
from chaos.report._junit import HARNESS_SUITE
from tests.chaos._saved_reports import arm_of, fail_guard, junit_schema, saved_report


def _parsed(document: dict[str, Any]) -> ET.Element:
    data = junit_xml(document)
    junit_schema().validate(data.decode("utf-8"))
    return ET.fromstring(data)


def _case(root: ET.Element, name: str) -> ET.Element:
    (case,) = [c for c in root.iter("testcase") if c.get("name") == name]
    return case


def test_a_run_whose_arms_all_passed_is_one_suite_of_passing_cases() -> None:
    root = _parsed(saved_report())
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "0", "0")
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "demo"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "0", "0")
    assert suite.get("time") == "22.000"
    assert suite.get("timestamp") == "2026-11-30T08:00:00+00:00"
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["seed"] == "4"
    assert properties["incident"] == "demo.txt"
    naive, guarded = suite.findall("testcase")
    assert (naive.get("classname"), naive.get("name")) == ("chaos.demo", "naive (naive)")
    assert guarded.get("name") == "guarded (guarded)"
    assert guarded.get("time") == "11.000"
    for case in (naive, guarded):
        assert case.find("failure") is None
        assert case.find("error") is None
    out = guarded.find("system-out")
    assert out is not None
    assert out.text == "PASS no-false-429: 0.00% <= 0.00%\nPASS p99: 17.5 ms <= 100.0 ms"


def test_a_failed_guard_is_a_failure_naming_the_slo_with_its_value_and_bound() -> None:
    root = _parsed(fail_guard(saved_report()))
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "1", "0")
    failure = _case(root, "guarded (guarded)").find("failure")
    assert failure is not None
    assert failure.get("type") == "guard-failed"
    assert failure.get("message") == "the guard failed: FAIL no-false-429: 12.00% <= 0.00%"
    assert failure.text is not None
    assert "PASS p99: 17.5 ms <= 100.0 ms" in failure.text
    assert _case(root, "naive (naive)").find("failure") is None


def test_a_naive_arm_that_did_not_reproduce_is_a_failure_naming_what_held() -> None:
    document = saved_report()
    naive = arm_of(document, "naive")
    naive["verdict"] = "not-reproduced"
    slo = naive["slos"][0]
    slo["value"], slo["passed"] = 0.0, True
    naive["signature"][0].update(value=0.0, passed=False)
    root = _parsed(document)
    failure = _case(root, "naive (naive)").find("failure")
    assert failure is not None
    assert failure.get("type") == "not-reproduced"
    assert failure.get("message") == (
        "the incident did not reproduce: PASS no-false-429: 0.00% <= 0.00% (must fail); "
        "signature FAIL mostly-429: 0.00% >= 90.00%"
    )


def test_an_untrusted_arm_is_an_error_never_a_failure() -> None:
    document = saved_report()
    guarded = arm_of(document, "guarded")
    guarded.update(
        verdict="error",
        trustworthy=False,
        untrusted=["the load ran late: scheduling lag p99 40.0 ms > 5.0 ms"],
        attempts=[{**arm_of(saved_report(), "guarded"), "verdict": "error", "error": "late"}],
    )
    guarded["slos"][0].update(value=0.3, passed=False)  # a failed SLO, but not trusted
    root = _parsed(document)
    assert (root.get("failures"), root.get("errors")) == ("0", "1")
    case = _case(root, "guarded (guarded)")
    assert case.find("failure") is None
    error = case.find("error")
    assert error is not None
    assert error.get("type") == "untrusted"
    assert error.get("message") == "the load ran late: scheduling lag p99 40.0 ms > 5.0 ms"
    assert error.text is not None
    assert "attempt 1: error: late" in error.text


def test_an_arm_the_harness_could_not_run_is_a_harness_error() -> None:
    document = saved_report()
    arm_of(document, "naive").update(verdict="error", error="redis-server did not start", load=None)
    error = _case(_parsed(document), "naive (naive)").find("error")
    assert error is not None
    assert (error.get("type"), error.get("message")) == (
        "harness-error",
        "redis-server did not start",
    )


def test_an_error_arm_without_a_reason_still_says_so() -> None:
    document = saved_report()
    arm_of(document, "naive").update(verdict="error")
    error = _case(_parsed(document), "naive (naive)").find("error")
    assert error is not None
    assert error.get("message") == "the harness could not judge this arm"


def test_harness_errors_outside_any_arm_are_error_cases_of_their_own_suite() -> None:
    document = saved_report()
    document["errors"] = ["scenario 'x': Toxiproxy: refused", "another"]
    root = _parsed(document)
    assert (root.get("tests"), root.get("errors")) == ("4", "2")
    suite = root.findall("testsuite")[-1]
    assert suite.get("name") == HARNESS_SUITE
    assert (suite.get("tests"), suite.get("errors"), suite.get("failures")) == ("2", "2", "0")
    messages = [case.find("error").get("message") for case in suite]  # type: ignore[union-attr]
    assert messages == ["scenario 'x': Toxiproxy: refused", "another"]


def test_a_run_without_scenarios_is_a_valid_empty_report() -> None:
    document = saved_report()
    document["scenarios"] = []
    root = _parsed(document)
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("0", "0", "0")


HOSTILE = [
    "a<b>&\"c'</testcase>]]>",
    "ctl\x00\x01\x08\x0b\x0c\x1f\x7f",
    "lone \ud800 and \udfff surrogates",
    "non-characters \ufffe\uffff",
    "tab\tnewline\ncr\r kept",
    "emoji \U0001f525 and CJK 障害",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_any_scenario_name_or_message_gives_valid_junit(text: str) -> None:
    document = fail_guard(saved_report())
    scenario = document["scenarios"][0]
    scenario["name"] = text
    scenario["incident"]["summary"] = text
    guarded = arm_of(document, "guarded")
    guarded["name"] = text
    guarded["slos"][0]["name"] = text
    guarded["notes"] = [text]
    arm_of(document, "naive").update(verdict="error", error=text)
    document["errors"] = [text]
    root = _parsed(document)
    (suite, _harness) = root.findall("testsuite")
    name = suite.get("name")
    assert name is not None
    assert not any(0xD800 <= ord(c) <= 0xDFFF or c in "\x00\x01\ufffe" for c in name)
    if text.startswith("a<b>"):
        assert name == text  # escaped, not altered
    if text.startswith("ctl"):
        assert name == "ctl\\x00\\x01\\x08\\x0b\\x0c\\x1f\x7f"  # DEL is allowed in XML 1.0
    if text.startswith("lone"):
        assert name == "lone \\ud800 and \\udfff surrogates"
    if text.startswith("emoji"):
        assert name == text


def test_write_junit_replaces_the_file_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text("old")
    write_junit(saved_report(), path)
    assert path.read_bytes() == junit_xml(saved_report())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junit.xml"]
    assert stat.S_IMODE(path.stat().st_mode) == FILE_MODE == 0o644


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "junit.xml"
    path.write_text("old")

    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        write_junit(saved_report(), path)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junit.xml"]


def test_write_junit_into_a_missing_folder_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_junit(saved_report(), tmp_path / "missing" / "junit.xml")


def test_the_schema_is_strict_enough_to_catch_a_malformed_file() -> None:
    schema = junit_schema()
    assert not schema.is_valid('<testsuites><testsuite name="a"/></testsuites>')  # no counts
    assert not schema.is_valid(
        '<testsuites><testsuite name="a" tests="1" failures="0" errors="0" time="-1">'
        "</testsuite></testsuites>"
    )


def _two_scenarios() -> dict[str, Any]:
    """The saved run, its scenario twice (``demo`` as saved, ``demo-2`` with a failed guard
    and an errored naive arm), and two harness errors."""
    document = saved_report()
    second = fail_guard(saved_report())["scenarios"][0]
    second["name"] = "demo-2"
    for arm in second["arms"]:
        arm["wall_time_s"] = 2.5
    second["arms"][0].update(verdict="error", error="no redis")
    document["scenarios"].append(second)
    document["errors"] = ["first", "second"]
    return document


def test_the_root_counts_every_case_of_every_suite_and_every_harness_error() -> None:
    data = junit_xml(_two_scenarios())
    assert data.startswith(b"<?xml version='1.0' encoding='utf-8'?>\n<testsuites ")
    assert data.endswith(b"</testsuites>\n")
    root = _parsed(_two_scenarios())
    assert root.attrib == {
        "name": "chaos run",
        "tests": "6",
        "failures": "1",
        "errors": "3",
        "time": "27.000",
    }
    first, second, harness = root.findall("testsuite")
    assert second.attrib == {
        "name": "demo-2", "tests": "2", "failures": "1", "errors": "1", "skipped": "0",
        "time": "5.000", "timestamp": "2026-11-30T08:00:00+00:00",
    }  # fmt: skip
    assert first.get("skipped") == "0"
    assert harness.attrib == {
        "name": "chaos harness", "tests": "2", "failures": "0", "errors": "2", "skipped": "0",
        "time": "0.000", "timestamp": "2026-11-30T08:00:00+00:00",
    }  # fmt: skip
    cases = [(c.get("classname"), c.get("name")) for c in harness.findall("testcase")]
    assert cases == [("chaos", "harness error 1"), ("chaos", "harness error 2")]
    error = harness.findall("testcase")[1].find("error")
    assert error is not None
    assert (error.get("type"), error.get("message"), error.text) == (
        "harness-error",
        "second",
        "second",
    )


def test_every_property_of_a_suite() -> None:
    document = saved_report()
    document["scale"] = 0.5
    (suite,) = _parsed(document).findall("testsuite")
    properties = [(p.get("name"), p.get("value")) for p in suite.iter("property")]
    assert properties == [
        ("incident", "demo.txt"),
        ("summary", "demo incident"),
        ("pattern", "demo guard"),
        ("seed", "4"),
        ("scale", "0.5"),
        ("toxiproxy", "2.12.0"),
        ("project", document["versions"]["project"]),
    ]


def test_the_output_of_a_case_has_every_slo_premise_and_note() -> None:
    document = saved_report()
    guarded = arm_of(document, "guarded")
    guarded["premises"] = [{**guarded["slos"][0], "name": "healthy"}]
    guarded["notes"] = ["dropped 3 actions", "second note"]
    out = _case(_parsed(document), "guarded (guarded)").find("system-out")
    assert out is not None
    assert out.text == (
        "PASS no-false-429: 0.00% <= 0.00%\nPASS p99: 17.5 ms <= 100.0 ms\n"
        "premise: PASS healthy: 0.00% <= 0.00%\nnote: dropped 3 actions\nnote: second note"
    )


def test_a_failure_names_only_the_slos_shown_broken() -> None:
    document = fail_guard(saved_report())
    slos = arm_of(document, "guarded")["slos"]
    slos[1].update(value=0.5, passed=False)
    slos.append({**slos[1], "name": "doubtful", "inconclusive": "noise"})
    slos.append({**slos[1], "name": "unmeasured", "problem": "too few"})
    failure = _case(_parsed(document), "guarded (guarded)").find("failure")
    assert failure is not None
    message = "the guard failed: FAIL no-false-429: 12.00% <= 0.00%; FAIL p99: 500.0 ms <= 100.0 ms"
    assert failure.get("message") == message
    assert failure.text is not None
    assert failure.text.splitlines() == [
        message,
        "FAIL no-false-429: 12.00% <= 0.00%",
        "FAIL p99: 500.0 ms <= 100.0 ms",
        "INCONCLUSIVE doubtful: 500.0 ms <= 100.0 ms",
        "FAIL unmeasured: 500.0 ms <= 100.0 ms",
    ]


def test_a_not_reproduced_failure_leaves_out_inconclusive_slos() -> None:
    document = saved_report()
    naive = arm_of(document, "naive")
    naive["verdict"] = "not-reproduced"
    naive["slos"][0].update(passed=True, inconclusive="noise")
    naive["slos"].append({**naive["slos"][0], "inconclusive": None, "name": "held"})
    document["scenarios"][0]["breaks"].append("held")
    failure = _case(_parsed(document), "naive (naive)").find("failure")
    assert failure is not None
    assert failure.get("message") == (
        "the incident did not reproduce: PASS held: 95.00% <= 0.00% (must fail)"
    )


def test_an_error_joins_its_reasons_and_lists_every_attempt() -> None:
    document = saved_report()
    first = {**arm_of(saved_report(), "guarded"), "verdict": "error", "error": "late"}
    guarded = arm_of(document, "guarded")
    guarded.update(
        verdict="error", error="lag", untrusted=["lag", "a gauge gap"],
        attempts=[first, {**first, "error": "later"}],
    )  # fmt: skip
    error = _case(_parsed(document), "guarded (guarded)").find("error")
    assert error is not None
    assert error.get("message") == "lag; a gauge gap"
    assert error.text is not None
    assert error.text.splitlines()[:4] == [
        "lag; a gauge gap",
        "attempt 1: error: late",
        "attempt 2: error: later",
        "PASS no-false-429: 0.00% <= 0.00%",
    ]


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.0004, "0.000"), (-3.0, "0.000"), (1234.5678, "1234.568")]
)
def test_times_are_what_the_schema_takes(seconds: float, text: str) -> None:
    document = saved_report()
    for arm in document["scenarios"][0]["arms"]:
        arm["wall_time_s"] = seconds / 2 if seconds > 0 else seconds
    (suite,) = _parsed(document).findall("testsuite")
    assert suite.get("time") == text
