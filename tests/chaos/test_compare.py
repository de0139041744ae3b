"""chaos compare: per scenario, arm and SLO, what changed between two saved runs; exit 1 when a
verdict got worse (an arm or a scenario missing from NEW included), naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chaos.cli import main
from chaos.report import VERDICT_ORDER, Comparison, compare_reports
from tests.chaos._saved_reports import SAVED_REPORT, arm_of, fail_guard, saved_report, write


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


def test_comparisons_are_frozen_values_and_print_their_notes() -> None:
    import dataclasses

    comparison = compare_reports(saved_report(), saved_report())
    change = comparison.arms[0]
    for value, field in ((comparison, "notes"), (change, "old"), (change.slos[0], "name")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, field, None)
    assert Comparison(()).lines() == ["no verdict got worse"]
    assert Comparison((), ("a note",)).lines() == ["note: a note", "no verdict got worse"]


def test_compare_names_both_files_first(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(SAVED_REPORT), str(SAVED_REPORT)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"chaos compare: OLD {SAVED_REPORT} -> NEW {SAVED_REPORT}"
