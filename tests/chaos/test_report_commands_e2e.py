"""One short real run, end to end: chaos run --junit --report, then chaos report prints what
the run printed and chaos compare names the verdict that got worse (the commands' other tests,
on saved reports, are in test_report_commands.py)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from chaos.cli import main
from chaos.report import read_report
from tests.chaos._saved_reports import arm_of, junit_schema, write


@pytest.mark.chaos
@pytest.mark.real_server
def test_a_real_run_gives_valid_junit_and_a_report_that_report_and_compare_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit, reports = tmp_path / "ci" / "junit.xml", tmp_path / "out"
    status = main(
        [
            "run", "selftest-broken-guard", "--scenarios-module", "tests.chaos.selftest_scenarios",
            "--scale", "0.4", "--seed", "3", "--junit", str(junit), "--report", str(reports),
        ]
    )  # fmt: skip
    assert status == 1
    run_out = capsys.readouterr().out
    junit_schema().validate(str(junit))
    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "1", "0")
    (failure,) = root.iter("failure")
    message = failure.get("message")
    assert message is not None
    assert message.startswith("the guard failed: FAIL p99-during-fault: ")
    assert message.endswith(" ms <= 200.0 ms")

    saved = reports / "report.json"
    assert main(["report", str(saved)]) == 0
    assert capsys.readouterr().out == run_out  # the table, the errors and the status line

    old = read_report(saved)
    arm_of(old, "guarded")["verdict"] = "mitigated"
    assert main(["compare", str(write(old, tmp_path / "main.json")), str(saved)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "  selftest-broken-guard / guarded: mitigated -> failed (WORSE)"
