"""What a run of :func:`chaos.engine.run_scenario` gives: each arm's result, its faults as
applied, live progress, and the scenario's result (all re-exported from :mod:`chaos.engine`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from chaos.load import LoadProgress, LoadResult
from chaos.scenario import GaugeSeries, Scenario, SLOResult, Verdict

__all__ = ["ArmProgress", "ArmResult", "FaultRecord", "ProgressCallback", "ScenarioResult"]


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


ProgressCallback = Callable[[ArmProgress], None]
