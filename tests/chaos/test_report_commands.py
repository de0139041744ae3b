"""chaos report (a saved run drawn again) and chaos compare (what changed between two runs):
a malformed, truncated or other-version file is one line naming the file and the field, with
exit status 2, never a traceback."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from chaos.cli import main
from chaos.report import (
    ReportError,
    junit_xml,
    read_report,
    render_table,
)
from tests.chaos._saved_reports import (
    SAVED_REPORT,
    arm_of,
    fail_guard,
    junit_schema,
    saved_report,
    write,
)


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# chaos report


def test_report_draws_the_saved_run_as_the_run_did(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(SAVED_REPORT)]) == 0
    out = capsys.readouterr().out
    console = Console(width=160, record=True, file=io.StringIO())
    console.print(render_table(saved_report()))
    assert console.export_text() in out
    assert "FAIL no-false-429: 95.00% <= 0.00% (must fail)" in out
    assert out.rstrip().endswith("exit status 0: every guard held and every incident reproduced")


def test_report_writes_the_html_page_and_the_junit_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    html, junit = tmp_path / "html", tmp_path / "ci" / "junit.xml"
    junit.parent.mkdir()
    assert main(["report", str(SAVED_REPORT), "--html", str(html), "--junit", str(junit)]) == 0
    page = (html / "report.html").read_text("utf-8")
    assert page.count("data:image/png;base64,") == 1
    assert "mitigated" in page
    assert junit.read_bytes() == junit_xml(saved_report())
    junit_schema().validate(str(junit))
    assert f"wrote {junit}" in capsys.readouterr().err


def test_report_shows_the_harness_errors_and_status_the_run_saved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = fail_guard(saved_report())
    document["exit_status"] = 1
    document["errors"] = ["scenario 'x': Toxiproxy: refused"]
    assert main(["report", str(write(document, tmp_path / "r.json"))]) == 0
    out = capsys.readouterr().out
    assert "error: scenario 'x': Toxiproxy: refused" in out
    assert "exit status 1: a guard failed" in out


def test_report_into_an_unwritable_place_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["report", str(SAVED_REPORT), "--junit", str(blocker / "junit.xml")]) == 2
    assert "cannot write" in _error_line(capsys)


def _mutated(change: Any) -> dict[str, Any]:
    document = saved_report()
    change(document)
    return document


MALFORMED = [
    pytest.param(b"", "is not JSON: Expecting value (line 1, column 1)", id="empty"),
    pytest.param(b'{"schema_version": 3, "scen', "is not JSON: Unterminated string", id="cut"),
    pytest.param(b"\xff\xfe{}", "is not UTF-8 text", id="not-utf8"),
    pytest.param(b"[1, 2]", "a JSON object was expected at the top", id="array"),
    pytest.param(b'{"seed": NaN}', "NaN is not a number a report holds", id="nan"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "not a report", id="deep"),
    pytest.param(
        json.dumps({**saved_report(), "schema_version": 2}).encode(),
        "schema_version 2; this chaos reads version 3",
        id="old-version",
    ),
    pytest.param(
        json.dumps(_mutated(lambda d: d.pop("schema_version"))).encode(),
        "at $: 'schema_version' is a required property",
        id="no-version",
    ),
    pytest.param(
        json.dumps(
            _mutated(lambda d: d["scenarios"][0]["arms"][1]["slos"][0].pop("bound"))
        ).encode(),
        "at $.scenarios[0].arms[1].slos[0]: 'bound' is a required property",
        id="no-bound",
    ),
    pytest.param(
        json.dumps(
            _mutated(lambda d: d["scenarios"][0]["arms"][0].update(verdict="great"))
        ).encode(),
        "at $.scenarios[0].arms[0].verdict: 'great' is not one of",
        id="bad-verdict",
    ),
    pytest.param(
        json.dumps(_mutated(lambda d: d["scenarios"].append(d["scenarios"][0]))).encode(),
        "at $.scenarios[1].name: scenario 'demo' appears twice",
        id="scenario-twice",
    ),
    pytest.param(
        json.dumps(
            _mutated(lambda d: d["scenarios"][0]["arms"].append(d["scenarios"][0]["arms"][0]))
        ).encode(),
        "at $.scenarios[0].arms[2].name: arm 'naive' appears twice in scenario 'demo'",
        id="arm-twice",
    ),
    pytest.param(
        json.dumps(_mutated(lambda d: d.update(scenarios="x" * 10_000))).encode(),
        "at $.scenarios: 'xxxx",
        id="huge-value",
    ),
]


@pytest.mark.parametrize(("content", "message"), MALFORMED)
@pytest.mark.parametrize("command", ["report", "compare-old", "compare-new"])
def test_a_malformed_report_is_one_line_naming_the_file_and_field(
    content: bytes,
    message: str,
    command: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    good = str(SAVED_REPORT)
    argv = {
        "report": ["report", str(bad)],
        "compare-old": ["compare", str(bad), good],
        "compare-new": ["compare", good, str(bad)],
    }[command]
    assert main(argv) == 2
    line = _error_line(capsys)
    assert line.startswith(f"chaos: error: {bad} ")
    assert message in line
    assert len(line) < 500


def test_a_missing_report_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope.json")]) == 2
    assert _error_line(capsys) == (
        f"chaos: error: cannot read {tmp_path / 'nope.json'}: No such file or directory"
    )


def test_read_report_takes_a_report_written_before_gauge_bounds() -> None:
    document = read_report(SAVED_REPORT)
    assert "gauge_bounds" not in document["scenarios"][0]
    assert document == saved_report()


def test_read_report_raises_report_error(tmp_path: Path) -> None:
    (tmp_path / "cut.json").write_text("{")
    with pytest.raises(ReportError, match=r"cut\.json is not JSON"):
        read_report(tmp_path / "cut.json")
    with pytest.raises(ReportError, match=r"at \$: 'schema_version' is a required property"):
        read_report(write({}, tmp_path / "r.json"))


def test_a_long_schema_message_is_cut_to_its_first_300_characters(tmp_path: Path) -> None:
    document = saved_report()
    document["scenarios"] = "x" * 10_000
    with pytest.raises(ReportError) as raised:
        read_report(write(document, tmp_path / "r.json"))
    message = str(raised.value).split(": at $.scenarios: ", 1)[1]
    assert len(message) == 300
    assert message.endswith("x...")


def test_a_file_that_is_not_utf8_says_where(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_bytes(b'{"a": "\xff"}')
    with pytest.raises(ReportError) as raised:
        read_report(tmp_path / "r.json")
    assert str(raised.value) == (
        f"{tmp_path / 'r.json'} is not UTF-8 text: invalid start byte at byte 7"
    )


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (0, "every guard held and every incident reproduced"),
        (1, "a guard failed"),
        (2, "the harness could not run everything"),
        (3, "a naive arm did not reproduce its incident"),
    ],
)
def test_report_ends_with_the_saved_status_as_run_wrote_it(
    status: int, text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = saved_report()
    document["exit_status"] = status
    assert main(["report", str(write(document, tmp_path / "r.json"))]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"exit status {status}: {text}"


def test_the_commands_help_names_their_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["report", "--help"], ["compare", "--help"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for text in (
        "report draw a saved JSON report again: the table, the HTML page, JUnit XML",
        "compare what changed between two saved runs; exit 1 if a verdict got worse",
        "usage: chaos report [-h] [--html DIR] [--junit FILE] REPORT.json",
        "REPORT.json a saved JSON report",
        "--html DIR write DIR/report.html",
        "--junit FILE write JUnit XML to FILE",
        "usage: chaos compare [-h] OLD.json NEW.json",
        "OLD.json the earlier run (e.g. main)",
        "NEW.json the later run (e.g. a PR)",
    ):
        assert text in out


def test_report_to_a_folder_that_cannot_be_made_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["report", str(SAVED_REPORT), "--html", str(blocker / "site")]) == 2
    line = _error_line(capsys)
    assert line == f"chaos: error: cannot write {blocker / 'site' / 'report.html'}: Not a directory"


def test_run_refuses_a_junit_path_that_is_a_folder_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "selftest-deadline", "--scenarios-module", "tests.chaos.selftest_scenarios"]
    assert main([*argv, "--junit", str(tmp_path)]) == 2
    assert _error_line(capsys) == f"chaos: error: --junit takes a file, and {tmp_path} is a folder"


def test_run_refuses_a_junit_file_in_a_place_it_cannot_write_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    argv = ["run", "selftest-deadline", "--scenarios-module", "tests.chaos.selftest_scenarios"]
    assert main([*argv, "--junit", str(blocker / "junit.xml")]) == 2
    assert _error_line(capsys) == (
        f"chaos: error: cannot write the JUnit file to {blocker / 'junit.xml'}: "
        f"{blocker} is a file, not a folder"
    )


def test_a_schema_message_of_exactly_300_characters_is_kept_whole(tmp_path: Path) -> None:
    document = saved_report()
    document["scenarios"] = "x" * 275  # the message: the value quoted, then 23 characters
    with pytest.raises(ReportError) as raised:
        read_report(write(document, tmp_path / "r.json"))
    message = str(raised.value).split(": at $.scenarios: ", 1)[1]
    assert message == repr("x" * 275) + " is not of type 'array'"
    assert len(message) == 300


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_number_json_allows_but_a_report_never_holds_is_named(
    constant: str, tmp_path: Path
) -> None:
    (tmp_path / "r.json").write_text(f'{{"seed": {constant}}}')
    with pytest.raises(ReportError) as raised:
        read_report(tmp_path / "r.json")
    assert str(raised.value) == (
        f"{tmp_path / 'r.json'} is not a report: {constant} is not a number a report holds"
    )


def test_report_makes_the_html_folder_or_reuses_it_and_says_what_it_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site, junit = tmp_path / "a" / "b", tmp_path / "junit.xml"
    for _ in range(2):  # made (with its parents), then reused
        argv = ["report", str(SAVED_REPORT), "--html", str(site), "--junit", str(junit)]
        assert main(argv) == 0
        assert capsys.readouterr().err.splitlines() == [
            f"chaos: wrote {site / 'report.html'}",
            f"chaos: wrote {junit}",
        ]
    assert (site / "report.html").is_file()


def test_report_prints_each_saved_harness_error_on_a_line_of_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = saved_report()
    document["errors"] = ["one", "two"]
    assert main(["report", str(write(document, tmp_path / "r.json"))]) == 0
    assert capsys.readouterr().out.splitlines()[-3:-1] == ["error: one", "error: two"]


def test_a_write_that_fails_midway_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", full)
    junit = tmp_path / "junit.xml"
    assert main(["report", str(SAVED_REPORT), "--junit", str(junit)]) == 2
    assert _error_line(capsys) == f"chaos: error: cannot write {junit}: No space left on device"
    assert list(tmp_path.iterdir()) == []


def test_report_off_a_terminal_is_160_columns_wide(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = saved_report()
    arm_of(document, "guarded")["notes"] = ["word " * 200]
    assert main(["report", str(write(document, tmp_path / "r.json"))]) == 0
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) == 160
