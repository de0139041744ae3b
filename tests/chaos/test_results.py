"""What a run gives (chaos._results), built by hand: whether it passed, each arm's verdict, an
arm by name, the one-line-per-arm summary, and the defaults of an arm's result and progress."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable

import pytest

from chaos._results import (
    PASSING_VERDICTS,
    ArmProgress,
    ArmResult,
    FaultRecord,
    ProgressCallback,
    ScenarioResult,
)
from chaos.engine import run_scenario
from chaos.scenario import SLOResult
from chaos.scenario._verdicts import Verdict
from tests.chaos.test_scenario import load_result, make_scenario


def _result(*arms: ArmResult) -> ScenarioResult:
    return ScenarioResult(
        scenario=make_scenario(), seed=1, scale=1.0, arms=list(arms),
        toxiproxy_url="http://127.0.0.1:8474", toxiproxy_version=None, toxiproxy_embedded=False,
    )  # fmt: skip


def _arm(name: str, role: str, verdict: Verdict, **changes: object) -> ArmResult:
    return ArmResult(name, role, verdict, **changes)  # type: ignore[arg-type]


def _slo(name: str, *, passed: bool, inconclusive: str | None = None) -> SLOResult:
    return SLOResult(
        name=name, kind="LatencyPercentile", description="", window="fault", value=0.25,
        op="<=", bound=0.1, unit="s", passed=passed, inconclusive=inconclusive,
    )  # fmt: skip


def test_each_role_asks_its_own_verdict() -> None:
    assert PASSING_VERDICTS == {"naive": "reproduced", "guarded": "mitigated"}


def test_a_run_passes_when_every_arm_gets_the_verdict_its_role_asks() -> None:
    naive, guarded = _arm("n", "naive", "reproduced"), _arm("g", "guarded", "mitigated")
    assert _result(naive, guarded).passed
    assert _result(naive).passed
    assert not _result(naive, _arm("g", "guarded", "failed")).passed
    assert not _result(_arm("n", "naive", "not-reproduced"), guarded).passed
    assert not _result(_arm("n", "naive", "error"), guarded).passed
    assert not _result(_arm("n", "naive", "mitigated")).passed


def test_a_run_of_no_arm_does_not_pass() -> None:
    assert not _result().passed


def test_verdicts_are_by_arm_name_in_run_order() -> None:
    result = _result(_arm("b", "guarded", "failed"), _arm("a", "naive", "reproduced"))
    assert list(result.verdicts.items()) == [("b", "failed"), ("a", "reproduced")]


def test_an_arm_is_found_by_name_and_a_missing_one_names_the_arms_run() -> None:
    first, second = _arm("n", "naive", "reproduced"), _arm("g", "guarded", "mitigated")
    result = _result(first, second)
    assert result.arm("g") is second
    assert result.arm("n") is first
    with pytest.raises(KeyError) as caught:
        result.arm("other")
    assert caught.value.args == ("no arm 'other' was run (arms: n, g)",)
    with pytest.raises(KeyError) as caught:
        _result().arm("n")
    assert caught.value.args == ("no arm 'n' was run (arms: none)",)


def test_the_summary_names_each_arm_then_its_failed_and_inconclusive_slos_and_errors() -> None:
    naive = _arm(
        "n", "naive", "error",
        slos=(_slo("held", passed=True), _slo("broke", passed=False)),
        signature=(_slo("sig", passed=True, inconclusive="too few"), _slo("s2", passed=False)),
        error="proxy gone", untrusted=("lag too high", "slipped"),
    )  # fmt: skip
    guarded = _arm("g", "guarded", "mitigated", slos=(_slo("fine", passed=True),))
    assert _result(naive, guarded).summary() == "\n".join(
        [
            "demo / n (naive): error",
            "  FAIL broke: 0.25 <= 0.1",
            "  INCONCLUSIVE sig: 0.25 <= 0.1",
            "  FAIL s2: 0.25 <= 0.1",
            "  error: proxy gone",
            "  error: lag too high",
            "  error: slipped",
            "demo / g (guarded): mitigated",
        ]
    )


def test_an_untrusted_reason_is_listed_without_an_error() -> None:
    arm = _arm("n", "naive", "error", untrusted=("lag too high",))
    assert _result(arm).summary() == "demo / n (naive): error\n  error: lag too high"


def test_the_summary_of_no_arm_is_empty() -> None:
    assert _result().summary() == ""


def test_an_arm_is_trusted_only_with_a_load_and_no_doubt() -> None:
    load = load_result([0.0], ["ok"], [0.01])
    assert _arm("n", "naive", "reproduced", load=load).trustworthy
    assert not _arm("n", "naive", "error", load=load, untrusted=("lag",)).trustworthy
    assert not _arm("n", "naive", "error").trustworthy


def test_an_arm_results_defaults_are_empty() -> None:
    arm = ArmResult("n", "naive", "error")
    assert (arm.slos, arm.signature, arm.faults, arm.untrusted, arm.attempts) == ((),) * 5
    assert (arm.premises, arm.notes, dict(arm.gauges)) == ((), (), {})
    assert (arm.load, arm.error, arm.wall_time) == (None, None, 0.0)
    assert arm.gauges is not ArmResult("m", "naive", "error").gauges


def test_progress_defaults_to_the_ok_outcome_and_a_single_attempt() -> None:
    progress = ArmProgress("demo", "n", "naive", "load", 1.0, 10.0, None)
    assert (progress.ok_outcomes, progress.attempt, progress.max_attempts) == (("ok",), 1, 1)


def test_a_fault_record_and_progress_are_frozen() -> None:
    record = FaultRecord(2.0, 2.01, "AddToxic", "redis", "latency on redis")
    progress = ArmProgress("demo", "n", "naive", "load", 1.0, 10.0, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.at = 3.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        progress.phase = "done"  # type: ignore[misc]


def test_the_progress_callback_type_takes_an_arm_progress() -> None:
    assert ProgressCallback == Callable[[ArmProgress], None]
    hints = typing.get_type_hints(run_scenario)
    assert hints["on_progress"] == Callable[[ArmProgress], None] | None
