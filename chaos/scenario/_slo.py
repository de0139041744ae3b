"""SLOs: what a scenario's steady-state hypothesis and its incident's signature are made of.

Each SLO measures one number on one arm's :class:`RunData` (its requests, its gauges, the
scenario's windows), over the whole run or one window, and compares it with one bound:
:class:`SuccessRatio`, :class:`OutcomeRatio`, :class:`OutcomeRate`, :class:`LatencyPercentile`,
:class:`AddedLatency`, :class:`LatencyGrowth` and :class:`Gauge`. Its :class:`SLOResult` says
whether it held; when the harness could not measure it soundly (too few samples), why
(``problem``); and when the value was measured but cannot decide the SLO (an added latency over
its bound by no more than the window's noise, a gauge that held only because some of its samples
are missing), why (``inconclusive``). How those become verdicts is in
:mod:`chaos.scenario._verdicts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from chaos.scenario._compared import (
    DEFAULT_MIN_BASELINE,
    DEFAULT_MIN_CONTROL,
    AddedLatency,
    LatencyGrowth,
)
from chaos.scenario._errors import ScenarioError
from chaos.scenario._measure import (
    GaugeSeries,
    RunData,
    SLOBase,
    SLOResult,
    bound_of,
    gauge_values,
    outcomes_of,
    percentile,
    tags_text,
    window_text,
)

__all__ = [
    "DEFAULT_MIN_BASELINE",
    "DEFAULT_MIN_CONTROL",
    "MAX_GAUGE_GAP",
    "SLO",
    "AddedLatency",
    "Gauge",
    "GaugeSeries",
    "LatencyGrowth",
    "LatencyPercentile",
    "OutcomeRate",
    "OutcomeRatio",
    "RunData",
    "SLOResult",
    "SuccessRatio",
]


@dataclass(frozen=True)
class SuccessRatio(SLOBase):
    """Share of requests (scheduled in the window) whose outcome is in ``success``."""

    name: str
    min: float
    window: str | None = None
    success: str | Sequence[str] = "ok"
    tag: str | Sequence[str] | None = None

    def measure(self, run: RunData) -> float | None:
        mask = run.request_mask(self.window, self.tag)
        total = int(mask.sum())
        if total == 0:
            return None
        return float((mask & run.load.outcome_mask(*outcomes_of(self.success))).sum()) / total

    def bound(self) -> tuple[Literal["<=", ">="], float]:
        return ">=", self.min

    def describe(self) -> str:
        return f"share of {'/'.join(outcomes_of(self.success))} >= {self.min:g}, " + window_text(
            self.window
        )


@dataclass(frozen=True)
class OutcomeRatio(SLOBase):
    """Share of requests (in the window, of group ``tag``) whose outcome is in ``outcome``.

    Give ``max`` for a bad outcome that must stay rare (``false_429`` at most 0), or ``min``
    for an incident signature (``false_429`` at least 0.9).
    """

    name: str
    outcome: str | Sequence[str]
    max: float | None = None
    min: float | None = None
    window: str | None = None
    tag: str | Sequence[str] | None = None

    def __post_init__(self) -> None:
        bound_of(self.name, self.min, self.max)

    def measure(self, run: RunData) -> float | None:
        mask = run.request_mask(self.window, self.tag)
        total = int(mask.sum())
        if total == 0:
            return None
        return float((mask & run.load.outcome_mask(*outcomes_of(self.outcome))).sum()) / total

    def bound(self) -> tuple[Literal["<=", ">="], float]:
        return ("<=", self.max) if self.max is not None else (">=", self.min or 0.0)

    def describe(self) -> str:
        op, bound = self.bound()
        who = f" of {tags_text(self.tag)} requests" if self.tag else ""
        return f"share{who} {'/'.join(outcomes_of(self.outcome))} {op} {bound:g}, " + window_text(
            self.window
        )


@dataclass(frozen=True)
class OutcomeRate(SLOBase):
    """Requests per second (scheduled in the window, of group ``tag``) with ``outcome``.

    E.g. "the abusive key is allowed at most 1.2x its limit": ``OutcomeRate("abuse-capped",
    "ok", tag="abusive", max=1.2 * limit)``.
    """

    name: str
    outcome: str | Sequence[str]
    max: float | None = None
    min: float | None = None
    window: str | None = None
    tag: str | Sequence[str] | None = None
    unit: str = "req/s"

    def __post_init__(self) -> None:
        bound_of(self.name, self.min, self.max)

    def measure(self, run: RunData) -> float | None:
        mask = run.request_mask(self.window, self.tag) & run.load.outcome_mask(
            *outcomes_of(self.outcome)
        )
        span = run.span(self.window)
        return float(mask.sum()) / span if span > 0 else None

    def bound(self) -> tuple[Literal["<=", ">="], float]:
        return ("<=", self.max) if self.max is not None else (">=", self.min or 0.0)

    def describe(self) -> str:
        op, bound = self.bound()
        who = f" of {tags_text(self.tag)}" if self.tag else ""
        return f"rate{who} {'/'.join(outcomes_of(self.outcome))} {op} {bound:g} req/s, " + (
            window_text(self.window)
        )


@dataclass(frozen=True)
class LatencyPercentile(SLOBase):
    """The ``q``-th percentile of latency (seconds, from the *scheduled* start) in a window.

    Percentiles are nearest-rank (the smallest value with at least ``q`` % of requests at or
    below it), over exact arrays. Requests never sent (``overflow``) count as infinitely slow.
    ``measure_from="started"`` uses service time (from the actual start) instead. For latency
    *added* by a guard, see :class:`AddedLatency`.

    Measured from the planned start, the value includes the load generator's own lateness; a
    value over the bound whose service times (from the actual start) keep the bound was broken
    by that lateness alone, not by the service, and is ``inconclusive``.
    """

    name: str
    max: float
    q: float = 99.0
    window: str | None = None
    tag: str | Sequence[str] | None = None
    outcome: str | Sequence[str] | None = None
    measure_from: Literal["scheduled", "started"] = "scheduled"
    unit: str = "s"

    def __post_init__(self) -> None:
        if not 0 < self.q <= 100:
            raise ScenarioError(f"SLO {self.name!r}: q must be in (0, 100], got {self.q}")

    def measure(self, run: RunData) -> float | None:
        mask = run.request_mask(self.window, self.tag)
        if self.outcome is not None:
            mask &= run.load.outcome_mask(*outcomes_of(self.outcome))
        source = run.load.latency if self.measure_from == "scheduled" else run.load.service_time
        return percentile(source[mask], self.q)

    def bound(self) -> tuple[Literal["<=", ">="], float]:
        return "<=", self.max

    def doubt(self, run: RunData, value: float, passed: bool) -> str | None:
        if passed or self.measure_from == "started":
            return None
        mask = run.request_mask(self.window, self.tag)
        if self.outcome is not None:
            mask &= run.load.outcome_mask(*outcomes_of(self.outcome))
        served = percentile(run.load.service_time[mask], self.q)
        if served is None or served > self.max:
            return None
        return (
            f"{value * 1000:.1f} ms is over {self.max * 1000:g} ms only with the load "
            f"generator's own lateness: from the actual start it is {served * 1000:.1f} ms"
        )

    def describe(self) -> str:
        what = "latency" if self.measure_from == "scheduled" else "service time"
        who = f" of {tags_text(self.tag)} requests" if self.tag is not None else ""
        return f"p{self.q:g} {what}{who} <= {self.max * 1000:g} ms, " + window_text(self.window)


@dataclass(frozen=True)
class Gauge(SLOBase):
    """The samples of gauge ``gauge`` in the window stay within one bound.

    Give ``max`` for a level that must never be exceeded (open connections at most 8: the
    largest sample is measured), or ``min`` for one that must never be undercut (capacity at
    least 4: the smallest sample is measured); exactly one of them, as for
    :class:`OutcomeRatio`. Samples the gauge could not give in time (NaN) are left out; a
    window with no sample measures nothing, and so does not hold.

    ``unit`` is the gauge's (``"s"`` for seconds, shown in ms; empty for a count).

    With ``q``, a percentile of the samples is measured instead of the extreme: the ``q``-th
    (nearest-rank) for ``max``, the ``(100 - q)``-th for ``min``, so ``q=90`` with ``max``
    reads "nine samples in ten at most ``max``" (for a level that may spike now and then).

    A sample beyond the bound proves an extreme broken whatever else is missing; holding needs
    every part of the window sampled. When the run's sampling interval is known and two
    samples of the window (or a sample and the window's edge) are more than
    :data:`MAX_GAUGE_GAP` intervals apart (the sampler ran late, or the gauge did not answer
    in time), a value that holds (with ``q``: any value) is ``inconclusive``: what the gap hid
    is unknown.
    """

    name: str
    gauge: str
    max: float | None = None
    min: float | None = None
    window: str | None = None
    q: float | None = None
    unit: str = ""

    def __post_init__(self) -> None:
        bound_of(self.name, self.min, self.max)
        if self.q is not None and not 0 < self.q <= 100:
            raise ScenarioError(f"SLO {self.name!r}: q must be in (0, 100], got {self.q}")

    def measure(self, run: RunData) -> float | None:
        values = gauge_values(run, self.gauge, self.window)
        if not len(values):
            return None
        if self.q is not None:
            return percentile(values, self.q if self.max is not None else 100 - self.q)
        return float(values.max()) if self.max is not None else float(values.min())

    def doubt(self, run: RunData, value: float, passed: bool) -> str | None:
        proven = not passed and self.q is None
        if proven or run.gauge_interval is None:
            return None
        series = run.gauges.get(self.gauge)
        if series is None:
            return None
        w = run.windows[self.window] if self.window is not None else None
        start, end = (0.0, run.load.duration) if w is None else (w.start, w.end)
        inside = (series.t >= start) & (series.t < end) & ~np.isnan(series.values)
        edges = np.concatenate([[start], series.t[inside], [end]])
        gap = float(np.diff(edges).max())
        if gap <= MAX_GAUGE_GAP * run.gauge_interval:
            return None
        return (
            f"gauge {self.gauge!r} went {gap:.2f} s without a sample in "
            f"{window_text(self.window)} (more than {MAX_GAUGE_GAP:g} intervals of "
            f"{run.gauge_interval:g} s): what the gap hid is unknown"
        )

    def bound(self) -> tuple[Literal["<=", ">="], float]:
        return ("<=", self.max) if self.max is not None else (">=", self.min or 0.0)

    def describe(self) -> str:
        op, bound = self.bound()
        if self.q is not None:
            share = self.q if op == "<=" else 100 - self.q
            statistic = f"p{share:g}"
        else:
            statistic = "max" if op == "<=" else "min"
        return f"{statistic} of gauge {self.gauge!r} {op} {bound:g}, " + window_text(self.window)


MAX_GAUGE_GAP = 2.5
"""Sampling intervals two samples of a gauge may lie apart before a window's coverage counts as
broken (one late or missing sample is tolerated, two in a row are not)."""


SLO = (
    SuccessRatio
    | OutcomeRatio
    | OutcomeRate
    | LatencyPercentile
    | AddedLatency
    | LatencyGrowth
    | Gauge
)
"""Every kind of SLO a scenario's hypothesis and signature can hold."""
