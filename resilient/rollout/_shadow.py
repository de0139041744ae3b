"""Shadow evaluation: what a candidate configuration would decide differently, on live inputs,
before any request sees it.

``shadow = ShadowEvaluation(decide, current, candidate)``; then ``shadow(request)`` wherever
the service decides: it returns ``decide(current, request)`` (the only decision acted on) and
also computes ``decide(candidate, request)``, counting whether the two differ, by cohort.
:meth:`ShadowEvaluation.report` says how many decisions change, per cohort, and how many raised
under the candidate (a candidate that raises where the current does not is a difference too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from resilient.errors import ArgumentTypeError

__all__ = ["MAX_SHADOW_COHORTS", "ShadowEvaluation", "ShadowReport"]

C = TypeVar("C")
I = TypeVar("I")  # noqa: E741
D = TypeVar("D")

MAX_SHADOW_COHORTS = 100
"""Cohorts counted one by one; the others are counted together under ``"<other>"`` (a cohort
taken from a request must not grow the report without bound)."""

_OTHER = "<other>"


@dataclass(slots=True)
class ShadowReport:
    """Decisions made, changed by the candidate, and raised under it; in all and by cohort."""

    decisions: int = 0
    changed: int = 0
    raised: int = 0
    by_cohort: dict[str, list[int]] = field(default_factory=dict)
    """``cohort -> [decisions, changed]``."""

    @property
    def changed_share(self) -> float:
        return self.changed / self.decisions if self.decisions else 0.0

    def share_by_cohort(self) -> dict[str, float]:
        return {
            cohort: changed / made for cohort, (made, changed) in self.by_cohort.items() if made
        }


class ShadowEvaluation(Generic[C, I, D]):
    """Decide under ``current`` (acted on) and ``candidate`` (only compared); ``cohort_of``
    names a request's cohort (a region) for the per-cohort shares."""

    def __init__(
        self,
        decide: Callable[[C, I], D],
        current: C,
        candidate: C,
        *,
        cohort_of: Callable[[I], str] | None = None,
    ) -> None:
        if not callable(decide):
            raise ArgumentTypeError(f"ShadowEvaluation.decide must be callable, got {decide!r}")
        if cohort_of is not None and not callable(cohort_of):
            raise ArgumentTypeError(
                f"ShadowEvaluation.cohort_of must be callable, got {cohort_of!r}"
            )
        self._decide = decide
        self._current = current
        self._candidate = candidate
        self._cohort_of = cohort_of
        self.report = ShadowReport()

    def __call__(self, request: I) -> D:
        """``decide(current, request)``, exactly as without the shadow (its exceptions
        included); the candidate's decision is only counted."""
        decision = self._decide(self._current, request)
        report = self.report
        try:
            changed = self._decide(self._candidate, request) != decision
        except Exception:
            report.raised += 1
            changed = True
        report.decisions += 1
        report.changed += changed
        if self._cohort_of is not None:
            try:
                cohort = self._cohort_of(request)
            except Exception:  # the request's decision stands; its cohort is unknown
                cohort = _OTHER
            if not isinstance(cohort, str) or (
                cohort not in report.by_cohort and len(report.by_cohort) >= MAX_SHADOW_COHORTS
            ):
                cohort = _OTHER
            counts = report.by_cohort.setdefault(cohort, [0, 0])
            counts[0] += 1
            counts[1] += changed
        return decision
