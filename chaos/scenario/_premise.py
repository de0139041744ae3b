"""Premises: what a scenario assumes of the machine and its dependencies, checked on every arm.

A hypothesis SLO is judged under the conditions the scenario declares: the faults of its
timeline, and health everywhere else. A shared machine can break that second half on its own:
a starved proxy or ``redis-server`` makes a dependency slow with no fault applied, and a guard
that rightly treats the slowness as a fault then misses an SLO that assumed a healthy
dependency ("back on Redis once the fault is over"). That miss says nothing about the guard.

A :class:`Premise` names such a condition as an SLO on what the dependency did, not on what
the guard made of it (typically a :class:`~chaos.scenario.Gauge` the arm registers: calls to
the dependency that timed out in a span declared healthy, or a probe beside the guard), and the
SLOs whose *failure* means something only when it held (``covers``). When a premise does not
hold on an arm (or cannot be measured there), each covered SLO that failed is ``inconclusive``
instead: the arm is measured again or ends as ``error`` (:mod:`chaos.scenario._verdicts`). A
covered SLO that held stands: the guard coped with worse conditions than the scenario assumed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chaos.scenario._measure import SLOResult
    from chaos.scenario._slo import SLO

__all__ = ["Premise", "apply_premises"]


@dataclass(frozen=True)
class Premise:
    """A condition of the environment (``check``) that the failure of each SLO named in
    ``covers`` (of the hypothesis or the signature) relies on; see the module docstring."""

    check: SLO
    covers: Sequence[str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "covers", tuple(self.covers))


def apply_premises(
    results: Sequence[SLOResult], premises: Sequence[Premise], checked: Sequence[SLOResult]
) -> tuple[SLOResult, ...]:
    """``results`` with every failed SLO covered by a premise that did not hold (``checked``:
    the premises' checks, measured, in order) made ``inconclusive``, saying which premise."""
    broken: dict[str, list[str]] = {}
    for premise, check in zip(premises, checked, strict=True):
        if check.passed and not check.inconclusive and check.problem is None:
            continue
        for name in premise.covers:
            broken.setdefault(name, []).append(_why(check))
    judged = []
    for result in results:
        reasons = broken.get(result.name)
        if reasons and not result.passed and result.problem is None and not result.inconclusive:
            doubt = "; ".join(reasons) + ": the environment, not the guard, may have decided it"
            result = dataclasses.replace(result, inconclusive=doubt)
        judged.append(result)
    return tuple(judged)


def _why(check: SLOResult) -> str:
    if check.value is None:
        return f"premise {check.name!r} could not be measured ({check.problem or 'no sample'})"
    if check.passed:
        return f"premise {check.name!r} is not known to hold ({check.inconclusive})"
    return (
        f"premise {check.name!r} did not hold ({check.description}: measured "
        f"{_format(check.value, check.unit)})"
    )


def _format(value: float, unit: str) -> str:
    return f"{value * 1000:.1f} ms" if unit == "s" else f"{value:g}"
