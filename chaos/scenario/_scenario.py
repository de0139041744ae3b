"""The :class:`Scenario`: an incident replayed, declared in one value and checked up front.

A scenario names its :class:`Incident` and the pattern it proves, and holds its topology, its
fault timeline and windows, its load, its arms and its steady-state hypothesis. Every
inconsistency (a proxy in front of no server, a fault outside the load, an SLO on an unknown
window, a ``breaks`` entry that is not in the hypothesis) is a :class:`ScenarioError` naming
the scenario and the field, raised when the scenario is built.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from chaos.load import Load
from chaos.scenario._arms import Arm
from chaos.scenario._errors import ScenarioError
from chaos.scenario._premise import Premise
from chaos.scenario._slo import SLO
from chaos.scenario._timeline import Fault, Window
from chaos.scenario._topology import Proxy, Server

__all__ = ["DEFAULT_BUCKET", "DEFAULT_GAUGE_INTERVAL", "Incident", "Scenario"]

DEFAULT_GAUGE_INTERVAL = 0.1
"""Seconds between two samples of every gauge."""

DEFAULT_BUCKET = 1.0
"""Width in seconds of one timeline bucket of the report (scaled with the scenario)."""


@dataclass(frozen=True)
class Scenario:
    """An incident replayed: topology, faults, load, arms and the steady-state hypothesis.

    ``hypothesis`` is what every guarded arm must keep. ``breaks`` names the hypothesis SLOs a
    naive arm must break, and ``signature`` lists extra checks the naive arm must show, so that
    "reproduced" means the incident happened the way it did, not just any failure.
    ``ok_outcomes`` are the outcome classes that are good answers in this scenario (e.g. a true
    429 for an abusive caller); progress displays count every other class as bad.

    ``premises`` are conditions of the machine and the dependencies that the failure of some
    SLOs relies on (:class:`~chaos.scenario.Premise`): where one does not hold, those failures
    say nothing about the guard.

    ``min_scale`` is the smallest :meth:`scaled` factor at which the scenario still means what
    it says, and ``min_scale_reason`` why (what does not shrink with it: a breaker's probe
    interval, enough samples in a window); a smaller scale is refused before anything runs.
    """

    name: str
    incident: Incident
    pattern: str
    load: Load
    arms: Sequence[Arm]
    hypothesis: Sequence[SLO]
    breaks: Sequence[str]
    signature: Sequence[SLO] = ()
    servers: Sequence[Server] = ()
    proxies: Sequence[Proxy] = ()
    faults: Sequence[Fault] = ()
    windows: Sequence[Window] = ()
    gauge_interval: float = DEFAULT_GAUGE_INTERVAL
    bucket: float = DEFAULT_BUCKET
    description: str = ""
    ok_outcomes: Sequence[str] = ("ok",)
    premises: Sequence[Premise] = ()
    min_scale: float = 0.0
    min_scale_reason: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.ok_outcomes, str):
            raise ScenarioError(
                f"scenario {self.name!r}: ok_outcomes: give a sequence of outcome classes, "
                f"e.g. ({self.ok_outcomes!r},), not the string {self.ok_outcomes!r}"
            )
        for name in (
            "arms",
            "hypothesis",
            "breaks",
            "signature",
            "servers",
            "proxies",
            "ok_outcomes",
            "premises",
        ):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "faults", tuple(sorted(self.faults, key=lambda f: f.at)))
        object.__setattr__(self, "windows", tuple(self.windows))
        _validate(self)

    @property
    def duration(self) -> float:
        """Planned seconds of load."""
        return self.load.duration

    def arm(self, name: str) -> Arm:
        """The arm called ``name`` (:class:`KeyError` if none)."""
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(name)

    def window(self, name: str) -> Window:
        """The window called ``name`` (:class:`KeyError` if none)."""
        for window in self.windows:
            if window.name == name:
                return window
        raise KeyError(name)

    def scaled(self, factor: float) -> Scenario:
        """The same scenario with every offset, duration, window and bucket times ``factor``.

        Rates, toxic attributes (a 2 s latency stays 2 s) and bounds are unchanged. A factor
        below :attr:`min_scale` raises :class:`ScenarioError` saying why it is refused.
        """
        if not (math.isfinite(factor) and factor > 0):
            raise ScenarioError(f"scale must be a positive number, got {factor}")
        if factor < self.min_scale:
            raise ScenarioError(
                f"scenario {self.name!r} runs at scale {self.min_scale:g} or more, not "
                f"{factor:g}: {self.min_scale_reason}"
            )
        if factor == 1:
            return self
        return replace(
            self,
            load=self.load.scaled(factor),
            faults=tuple(replace(f, at=f.at * factor) for f in self.faults),
            windows=tuple(
                replace(w, start=w.start * factor, end=w.end * factor) for w in self.windows
            ),
            bucket=self.bucket * factor,
        )


@dataclass(frozen=True)
class Incident:
    """The incident a scenario replays: its report in ``incidents/`` and one line about it."""

    file: str
    summary: str


def _validate(s: Scenario) -> None:
    def fail(field_name: str, problem: str) -> None:
        raise ScenarioError(f"scenario {s.name!r}: {field_name}: {problem}")

    if not s.name or not s.name.replace("-", "").replace("_", "").isalnum():
        fail("name", "use letters, digits, '-' and '_'")
    _unique(s, "arms", [a.name for a in s.arms])
    roles = {a.role for a in s.arms}
    for i, arm in enumerate(s.arms):
        if arm.role not in ("naive", "guarded"):
            fail(f"arms[{i}].role", f"must be 'naive' or 'guarded', got {arm.role!r}")
    if roles != {"naive", "guarded"}:
        fail("arms", "needs at least one 'naive' and one 'guarded' arm")
    servers = [sv.name for sv in s.servers]
    _unique(s, "servers", servers)
    _unique(s, "proxies", [p.name for p in s.proxies])
    for i, proxy in enumerate(s.proxies):
        if proxy.upstream not in servers:
            fail(f"proxies[{i}].upstream", f"{proxy.upstream!r} is not a declared server")
    proxies = {p.name for p in s.proxies}
    for i, fault in enumerate(s.faults):
        if fault.proxy not in proxies:
            fail(f"faults[{i}].proxy", f"{fault.proxy!r} is not a declared proxy")
        if not 0 <= fault.at <= s.load.duration:
            fail(f"faults[{i}].at", f"{fault.at} is outside the load (0..{s.load.duration})")
    windows = [w.name for w in s.windows]
    _unique(s, "windows", windows)
    for i, window in enumerate(s.windows):
        if not 0 <= window.start < window.end <= s.load.duration:
            fail(
                f"windows[{i}]",
                f"{window.name!r} [{window.start}, {window.end}) must lie in "
                f"[0, {s.load.duration}] with start < end",
            )
    slo_names = [slo.name for slo in s.hypothesis]
    _unique(s, "hypothesis", slo_names)
    if not s.hypothesis:
        fail("hypothesis", "needs at least one SLO")
    for group, slos in (("hypothesis", s.hypothesis), ("signature", s.signature)):
        for i, slo in enumerate(slos):
            if slo.window is not None and slo.window not in windows:
                fail(f"{group}[{i}].window", f"{slo.window!r} is not a declared window")
    checked = [*slo_names, *(slo.name for slo in s.signature)]
    for i, premise in enumerate(s.premises):
        check = premise.check
        if check.window is not None and check.window not in windows:
            fail(f"premises[{i}].check.window", f"{check.window!r} is not a declared window")
        if check.name in checked:
            fail(f"premises[{i}].check.name", f"{check.name!r} is already an SLO's name")
        if not premise.covers:
            fail(f"premises[{i}].covers", "name the SLOs whose failure relies on the premise")
        for name in premise.covers:
            if name not in checked:
                fail(f"premises[{i}].covers", f"{name!r} is not an SLO of the scenario")
    if not s.breaks:
        fail("breaks", "name at least one hypothesis SLO the naive arm must break")
    for i, name in enumerate(s.breaks):
        if name not in slo_names:
            fail(f"breaks[{i}]", f"{name!r} is not an SLO of the hypothesis")
    if not s.ok_outcomes:
        fail("ok_outcomes", "name at least one outcome class (e.g. ('ok',))")
    if not s.gauge_interval > 0:
        fail("gauge_interval", f"must be positive, got {s.gauge_interval}")
    if not s.bucket > 0:
        fail("bucket", f"must be positive, got {s.bucket}")
    if not 0 <= s.min_scale <= 1:
        fail("min_scale", f"must be in [0, 1], got {s.min_scale}")
    if s.min_scale > 0 and not s.min_scale_reason:
        fail("min_scale_reason", "say why a smaller scale would not mean what the scenario says")


def _unique(s: Scenario, field_name: str, names: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ScenarioError(f"scenario {s.name!r}: {field_name}: {name!r} appears twice")
        seen.add(name)
