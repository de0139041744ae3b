"""chaos report (a saved run drawn again) and chaos compare (what changed between two runs):
a malformed, truncated or other-version file is one line naming the file and the field, with
exit status 2, never a traceback."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from chaos.cli import main
from chaos.report import (
    VERDICT_ORDER,
    Comparison,
    ReportError,
    compare_reports,
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


# chaos compare


def test_two_runs_that_differ_in_one_verdict_exit_1_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write(saved_report(), tmp_path / "old.json")
    new = write(fail_guard(saved_report()), tmp_path / "new.json")
    assert main(["compare", str(old), str(new)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "demo / guarded: mitigated -> failed (WORSE)" in out
    assert "    hypothesis no-false-429: 0.00% -> 12.00% (<= 0.00%) PASS -> FAIL" in out
    assert "demo / naive: reproduced (unchanged)" in out
    assert out[-2:] == ["1 verdict(s) got worse:", "  demo / guarded: mitigated -> failed (WORSE)"]


def test_the_same_run_twice_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(SAVED_REPORT), str(SAVED_REPORT)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "no verdict got worse"
    assert "    hypothesis p99: 17.5 ms -> 17.5 ms (<= 100.0 ms) PASS" in out
    assert "    signature mostly-429: 95.00% -> 95.00% (>= 90.00%) PASS" in out


def test_a_verdict_that_got_better_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write(fail_guard(saved_report()), tmp_path / "old.json")
    assert main(["compare", str(old), str(SAVED_REPORT)]) == 0
    assert "demo / guarded: failed -> mitigated (better)" in capsys.readouterr().out


def test_an_arm_missing_from_new_is_worse_and_a_new_one_is_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new_document = saved_report()
    arms = new_document["scenarios"][0]["arms"]
    arms[:] = [arms[1], {**arms[1], "name": "guarded-v2"}]
    new = write(new_document, tmp_path / "new.json")
    assert main(["compare", str(SAVED_REPORT), str(new)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "demo / naive: reproduced -> missing (WORSE)" in out
    assert "demo / guarded-v2: new in NEW: mitigated" in out
    assert out[-1] == "  demo / naive: reproduced -> missing (WORSE)"


def test_a_scenario_missing_from_new_is_worse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = saved_report()
    empty["scenarios"] = []
    assert main(["compare", str(SAVED_REPORT), str(write(empty, tmp_path / "new.json"))]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-3:] == [
        "2 verdict(s) got worse:",
        "  demo / naive: reproduced -> missing (WORSE)",
        "  demo / guarded: mitigated -> missing (WORSE)",
    ]


@pytest.mark.parametrize(
    ("old", "new", "worse"),
    [
        ("mitigated", "failed", True),
        ("mitigated", "error", True),
        ("error", "failed", True),
        ("failed", "error", False),
        ("error", "mitigated", False),
        ("failed", "failed", False),
        ("reproduced", "not-reproduced", True),
        ("reproduced", "error", True),
        ("not-reproduced", "error", True),
        ("error", "not-reproduced", False),
    ],
)
def test_the_order_of_verdicts_follows_chaos_runs_exit_status(
    old: str, new: str, worse: bool
) -> None:
    before, after = saved_report(), saved_report()
    arm_of(before, "guarded")["verdict"] = old
    arm_of(after, "guarded")["verdict"] = new
    comparison = compare_reports(before, after)
    assert bool(comparison.worse) is worse
    assert [arm.arm for arm in comparison.worse] == (["guarded"] if worse else [])


def test_verdict_order_ranks_every_verdict_of_the_schema() -> None:
    from chaos.report import load_schema

    verdicts = load_schema()["$defs"]["arm"]["properties"]["verdict"]["enum"]
    assert set(VERDICT_ORDER) == {*verdicts, None}


def test_slo_changes_name_bounds_that_moved_and_slos_added_or_dropped() -> None:
    before, after = saved_report(), saved_report()
    guarded = arm_of(after, "guarded")
    guarded["slos"][1]["bound"] = 0.2
    dropped = guarded["slos"].pop(0)
    guarded["premises"] = [{**dropped, "name": "healthy", "inconclusive": "a gap"}]
    lines = compare_reports(before, after).lines()
    assert "    hypothesis p99: 17.5 ms -> 17.5 ms (<= 100.0 ms -> <= 200.0 ms) PASS" in lines
    assert "    hypothesis no-false-429: not in NEW (0.00% <= 0.00%, PASS)" in lines
    assert "    premise healthy: new in NEW (0.00% <= 0.00%, INCONCLUSIVE)" in lines


def test_runs_at_another_scale_or_seed_say_so(tmp_path: Path) -> None:
    after = saved_report()
    after["scale"], after["seed"] = 0.5, 9
    notes = compare_reports(saved_report(), after).notes
    assert notes == (
        "the runs differ in scale: OLD 1.0, NEW 0.5 (values may not be comparable)",
        "the runs differ in seed: OLD 4, NEW 9 (values may not be comparable)",
    )


def test_compare_prints_lone_surrogates_as_escapes_not_a_traceback(tmp_path: Path) -> None:
    old, new = saved_report(), fail_guard(saved_report())
    for document in (old, new):
        document["scenarios"][0]["name"] = "bad \ud800 name"
    paths = [str(write(d, tmp_path / f"{i}.json")) for i, d in enumerate((old, new))]
    done = subprocess.run(
        [sys.executable, "-m", "chaos", "compare", *paths],
        capture_output=True,
        text=True,
        errors="backslashreplace",
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "bad \\ud800 name / guarded: mitigated -> failed (WORSE)" in done.stdout


def test_a_failed_arm_missing_from_new_is_still_worse() -> None:
    before, after = fail_guard(saved_report()), saved_report()
    after["scenarios"][0]["arms"] = [arm_of(after, "naive")]
    (worse,) = compare_reports(before, after).worse
    assert (worse.arm, worse.old, worse.new) == ("guarded", "failed", None)
    assert worse.describe() == "demo / guarded: failed -> missing (WORSE)"
    assert not worse.better


def test_an_arm_only_in_new_is_neither_worse_nor_better() -> None:
    after = saved_report()
    after["scenarios"][0]["arms"].append({**arm_of(after, "guarded"), "name": "extra"})
    change = compare_reports(saved_report(), after).arms[-1]
    assert (change.arm, change.old, change.new, change.slos) == ("extra", None, "mitigated", ())
    assert not change.worse
    assert not change.better


def test_a_role_that_changed_between_equal_verdicts_is_as_good() -> None:
    before, after = saved_report(), saved_report()
    arm_of(after, "guarded")["verdict"] = "reproduced"
    (_, guarded) = compare_reports(before, after).arms
    assert guarded.describe() == "demo / guarded: mitigated -> reproduced (as good)"


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
    assert _error_line(capsys).startswith(f"chaos: error: cannot write the report to {blocker}")


def test_comparisons_are_frozen_values_and_print_their_notes() -> None:
    import dataclasses

    comparison = compare_reports(saved_report(), saved_report())
    change = comparison.arms[0]
    for value, field in ((comparison, "notes"), (change, "old"), (change.slos[0], "name")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, field, None)
    assert Comparison(()).lines() == ["no verdict got worse"]
    assert Comparison((), ("a note",)).lines() == ["note: a note", "no verdict got worse"]


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


def test_compare_names_both_files_first(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(SAVED_REPORT), str(SAVED_REPORT)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"chaos compare: OLD {SAVED_REPORT} -> NEW {SAVED_REPORT}"


def test_report_off_a_terminal_is_160_columns_wide(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = saved_report()
    arm_of(document, "guarded")["notes"] = ["word " * 200]
    assert main(["report", str(write(document, tmp_path / "r.json"))]) == 0
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) == 160
