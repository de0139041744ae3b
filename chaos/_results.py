"""What a run of :func:`chaos.engine.run_scenario` gives: each arm's result, its faults as
applied, live progress, and the scenario's result (all re-exported from :mod:`chaos.engine`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from chaos.load import LoadProgress, LoadResult
from chaos.scenario import GaugeSeries, Scenario, SLOResult, Verdict

__all__ = [
    "PASSING_VERDICTS",
    "ArmProgress",
    "ArmResult",
    "FaultRecord",
    "ProgressCallback",
    "ScenarioResult",
]


@dataclass(frozen=True)
class FaultRecord:
    """One fault of the timeline as applied: planned and actual offsets from load start.

    An arm's own step (:meth:`chaos.scenario.ArmContext.at`) is recorded the same way, with
    ``kind`` ``ArmStep`` and no ``proxy`` (an empty string)."""

    at: float
    applied_at: float
    kind: str
    proxy: str
    description: str


@dataclass(frozen=True)
class ArmProgress:
    """A live view of one arm for progress displays.

    ``ok_outcomes`` are the scenario's good outcome classes (:attr:`Scenario.ok_outcomes`).
    """

    scenario: str
    arm: str
    role: str
    phase: str
    elapsed: float
    planned: float
    load: LoadProgress | None
    ok_outcomes: tuple[str, ...] = ("ok",)
    attempt: int = 1
    max_attempts: int = 1


@dataclass
class ArmResult:
    """One arm's run and its verdict.

    ``load`` and ``gauges`` are None when the harness failed before the load (``error`` says
    why). ``premises`` are the scenario's premises measured on this run. ``untrusted`` says
    why the measurement could not be trusted (the verdict is then ``error``); ``attempts``
    holds the earlier runs of this arm, each untrusted, when it was run again (``retries``):
    this result is the last attempt. ``notes`` are the lines the arm's code added to its
    report (:meth:`chaos.scenario.ArmContext.note`).
    """

    name: str
    role: str
    verdict: Verdict
    slos: tuple[SLOResult, ...] = ()
    signature: tuple[SLOResult, ...] = ()
    load: LoadResult | None = None
    gauges: Mapping[str, GaugeSeries] = field(default_factory=dict)
    faults: tuple[FaultRecord, ...] = ()
    error: str | None = None
    wall_time: float = 0.0
    untrusted: tuple[str, ...] = ()
    attempts: tuple[ArmResult, ...] = ()
    premises: tuple[SLOResult, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def trustworthy(self) -> bool:
        """Whether the harness trusts this measurement (see :mod:`chaos.scenario._verdicts`);
        False when there was no load."""
        return self.load is not None and not self.untrusted


PASSING_VERDICTS: Mapping[str, str] = {"naive": "reproduced", "guarded": "mitigated"}
"""The verdict each role asks of its arm: the naive arm shows the incident, the guarded arm
keeps the hypothesis."""


@dataclass
class ScenarioResult:
    """Every arm of one scenario, run with one seed and one scale."""

    scenario: Scenario
    seed: int
    scale: float
    arms: list[ArmResult]
    toxiproxy_url: str
    toxiproxy_version: str | None
    toxiproxy_embedded: bool

    @property
    def passed(self) -> bool:
        """Every arm got the verdict its role asks (:data:`PASSING_VERDICTS`): the incident
        reproduced without the guard and was mitigated with it. False for an ``error`` arm
        too: an arm the harness could not judge proves nothing."""
        return bool(self.arms) and all(
            arm.verdict == PASSING_VERDICTS.get(arm.role) for arm in self.arms
        )

    @property
    def verdicts(self) -> dict[str, str]:
        """Each arm's verdict, by arm name."""
        return {arm.name: arm.verdict for arm in self.arms}

    def arm(self, name: str) -> ArmResult:
        """The result of the arm called ``name``; :class:`KeyError` naming the arms run."""
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(f"no arm {name!r} was run (arms: {', '.join(self.verdicts) or 'none'})")

    def summary(self) -> str:
        """One line per arm: its verdict, then every SLO that did not hold and every reason
        it is ``error`` (an assertion message: ``assert result.passed, result.summary()``)."""
        lines = []
        for arm in self.arms:
            lines.append(f"{self.scenario.name} / {arm.name} ({arm.role}): {arm.verdict}")
            for slo in (*arm.slos, *arm.signature):
                if not slo.passed or slo.inconclusive:
                    mark = "INCONCLUSIVE" if slo.inconclusive else "FAIL"
                    lines.append(f"  {mark} {slo.name}: {slo.value} {slo.op} {slo.bound}")
            lines += [f"  error: {reason}" for reason in (arm.error, *arm.untrusted) if reason]
        return "\n".join(lines)


ProgressCallback = Callable[[ArmProgress], None]
