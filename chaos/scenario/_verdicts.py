"""Verdicts: an arm's SLO results judged against its role.

- a guarded arm is ``mitigated`` when it keeps every SLO of the hypothesis, else ``failed``;
- a naive arm is ``reproduced`` when it breaks every SLO named in ``breaks`` and shows every
  check of the incident's ``signature``, else ``not-reproduced``;
- ``error`` (the harness could not run the arm or measure an SLO soundly) is decided by the
  engine, never here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from chaos.scenario._scenario import Scenario
    from chaos.scenario._slo import RunData, SLOResult

__all__ = ["Verdict", "judge_guarded", "judge_naive"]

Verdict = Literal["reproduced", "not-reproduced", "mitigated", "failed", "error"]


def judge_guarded(
    scenario: Scenario, run: RunData
) -> tuple[Verdict, tuple[SLOResult, ...], tuple[SLOResult, ...]]:
    """``mitigated`` when every hypothesis SLO holds; the SLO results; no signature checks."""
    results = tuple(slo.evaluate(run) for slo in scenario.hypothesis)
    return ("mitigated" if all(r.passed for r in results) else "failed"), results, ()


def judge_naive(
    scenario: Scenario, run: RunData
) -> tuple[Verdict, tuple[SLOResult, ...], tuple[SLOResult, ...]]:
    """``reproduced`` when every SLO in ``breaks`` fails and every signature check holds."""
    results = tuple(slo.evaluate(run) for slo in scenario.hypothesis)
    signature = tuple(slo.evaluate(run) for slo in scenario.signature)
    broken = {r.name for r in results if not r.passed}
    reproduced = set(scenario.breaks) <= broken and all(r.passed for r in signature)
    return ("reproduced" if reproduced else "not-reproduced"), results, signature
