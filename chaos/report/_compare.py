"""What changed between two runs (``chaos compare OLD.json NEW.json``): per scenario, arm and
SLO, the verdict and each value against its bound; whether any verdict got worse.

The order of verdicts, best first, is the order in which ``chaos run``'s exit status ranks
them, so that ``compare`` and ``run`` never disagree about which news is worse:

1. ``mitigated`` / ``reproduced``: the arm did what its role asks (``run`` exits 0);
2. ``not-reproduced``: a naive arm did not show the incident: the scenario proves nothing, but
   no guard is shown broken (``run`` exits 3);
3. ``error``: the harness could not judge the arm (it could not run it, or could not trust
   its measurement): nothing shows the guard holds any more (``run`` exits 2);
4. ``failed``: a trusted measurement shows the guard broken (``run`` exits 1);
5. missing: the arm (or its whole scenario) is in OLD and not in NEW: whatever it proved is
   no longer proved.

A verdict that moves down this list got worse (:attr:`Comparison.worse`). Arms and scenarios
only in NEW are listed as new, and are never worse. SLO values are listed for every arm in
both runs (old value, new value, bound), marked where an SLO went from holding to failing or
back; they inform, the verdict decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chaos.report._format import format_value

__all__ = ["VERDICT_ORDER", "ArmChange", "Comparison", "SLOChange", "compare_reports"]

VERDICT_ORDER: Mapping[str | None, int] = {
    "mitigated": 0,
    "reproduced": 0,
    "not-reproduced": 1,
    "error": 2,
    "failed": 3,
    None: 4,
}
"""Rank of each verdict, 0 the best; None stands for an arm missing from a run."""


@dataclass(frozen=True)
class SLOChange:
    """One SLO of one arm in both runs (``group``: hypothesis, signature or premise); ``old``
    or ``new`` is None where the SLO is in one run only. Both are SLO documents."""

    group: str
    name: str
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None

    def describe(self) -> str:
        """``hypothesis no-false-429: 0.50% -> 12.00% (<= 1.00%) PASS -> FAIL``."""
        label = f"{self.group} {self.name}"
        if self.old is None or self.new is None:
            present = self.new if self.old is None else self.old
            assert present is not None
            where = "new in NEW" if self.old is None else "not in NEW"
            return f"{label}: {where} ({_value(present)} {_bound(present)}, {_mark(present)})"
        old_value, new_value = _value(self.old), _value(self.new)
        bounds = _bound(self.new)
        if _bound(self.old) != bounds:
            bounds = f"{_bound(self.old)} -> {bounds}"
        marks = _mark(self.old)
        if _mark(self.new) != marks:
            marks = f"{marks} -> {_mark(self.new)}"
        return f"{label}: {old_value} -> {new_value} ({bounds}) {marks}"


@dataclass(frozen=True)
class ArmChange:
    """One arm of one scenario in both runs: its verdict in each (None: not in that run) and
    its SLOs."""

    scenario: str
    arm: str
    old: str | None
    new: str | None
    slos: tuple[SLOChange, ...] = ()

    @property
    def worse(self) -> bool:
        """The verdict moved down :data:`VERDICT_ORDER` (an arm only in NEW never did)."""
        return self.old is not None and VERDICT_ORDER[self.new] > VERDICT_ORDER[self.old]

    @property
    def better(self) -> bool:
        """The verdict moved up :data:`VERDICT_ORDER` (an arm only in NEW did not)."""
        return self.old is not None and VERDICT_ORDER[self.new] < VERDICT_ORDER[self.old]

    def describe(self) -> str:
        """``rate-limiter-outage / guarded: mitigated -> failed (WORSE)``."""
        if self.old is None:
            change = f"new in NEW: {self.new}"
        elif self.old == self.new:
            change = f"{self.new} (unchanged)"
        else:
            trend = "WORSE" if self.worse else "better" if self.better else "as good"
            change = f"{self.old} -> {self.new or 'missing'} ({trend})"
        return f"{self.scenario} / {self.arm}: {change}"


@dataclass(frozen=True)
class Comparison:
    """Every arm of both runs, OLD's order first, then those only in NEW."""

    arms: tuple[ArmChange, ...]
    notes: tuple[str, ...] = ()

    @property
    def worse(self) -> tuple[ArmChange, ...]:
        """The arms whose verdict got worse (missing from NEW included)."""
        return tuple(arm for arm in self.arms if arm.worse)

    def lines(self) -> list[str]:
        """The comparison as text: notes, each arm and its SLOs, then a summary naming
        every arm that got worse."""
        lines = [f"note: {note}" for note in self.notes]
        for arm in self.arms:
            lines.append(arm.describe())
            lines += [f"    {slo.describe()}" for slo in arm.slos]
        worse = self.worse
        if worse:
            lines.append(f"{len(worse)} verdict(s) got worse:")
            lines += [f"  {arm.describe()}" for arm in worse]
        else:
            lines.append("no verdict got worse")
        return lines


def compare_reports(old: Mapping[str, Any], new: Mapping[str, Any]) -> Comparison:
    """Compare two report documents (as :func:`chaos.report.read_report` gives them)."""
    old_arms, new_arms = _arms(old), _arms(new)
    changes = []
    for key, old_arm in old_arms.items():
        new_arm = new_arms.get(key)
        changes.append(
            ArmChange(
                scenario=key[0], arm=key[1], old=old_arm["verdict"],
                new=None if new_arm is None else new_arm["verdict"],
                slos=() if new_arm is None else _slos(old_arm, new_arm),
            )
        )  # fmt: skip
    for key, new_arm in new_arms.items():
        if key not in old_arms:
            changes.append(ArmChange(key[0], key[1], None, new_arm["verdict"]))
    notes = [
        f"the runs differ in {field}: OLD {old[field]!r}, NEW {new[field]!r} "
        "(values may not be comparable)"
        for field in ("scale", "seed")
        if old[field] != new[field]
    ]
    return Comparison(tuple(changes), tuple(notes))


def _arms(document: Mapping[str, Any]) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {
        (scenario["name"], arm["name"]): arm
        for scenario in document["scenarios"]
        for arm in scenario["arms"]
    }


_GROUPS = (("hypothesis", "slos"), ("signature", "signature"), ("premise", "premises"))


def _slos(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[SLOChange, ...]:
    changes = []
    for group, field in _GROUPS:
        before = {slo["name"]: slo for slo in old[field]}
        after = {slo["name"]: slo for slo in new[field]}
        changes += [SLOChange(group, name, slo, after.get(name)) for name, slo in before.items()]
        changes += [SLOChange(group, name, None, slo) for name, slo in after.items()
                    if name not in before]  # fmt: skip
    return tuple(changes)


def _value(slo: Mapping[str, Any]) -> str:
    return format_value(slo["value"], slo)


def _bound(slo: Mapping[str, Any]) -> str:
    return f"{slo['op']} {format_value(slo['bound'], slo)}"


def _mark(slo: Mapping[str, Any]) -> str:
    return "INCONCLUSIVE" if slo.get("inconclusive") else "PASS" if slo["passed"] else "FAIL"
