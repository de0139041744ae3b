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

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from chaos.load import LoadResult
from chaos.scenario._errors import ScenarioError
from chaos.scenario._measure import (
    GaugeSeries,
    RunData,
    SLOBase,
    SLOResult,
    bound_of,
    gauge_values,
    names_of,
    outcomes_of,
    percentile,
    tags_text,
    window_text,
)
from chaos.scenario._noise import SIGNIFICANCE, excess_p_value

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


DEFAULT_MIN_CONTROL = 100
"""Fewest control requests a window needs for :class:`AddedLatency` at its default ``q`` (99):
below 100 samples a nearest-rank 99th percentile is just the maximum."""


@dataclass(frozen=True)
class AddedLatency(SLOBase):
    """Latency a guard adds, against a control group measured in the same window.

    The load sends a share of its requests tagged ``control_tag`` to a route of the service
    under test that does everything the guarded route does except the guarded step (e.g. an
    exempt health route, which the rate-limit middleware passes through). Both groups are
    interleaved on one schedule, so a stall of the machine (GC, another process, a busy core)
    during the window hits both alike. The value is

        p(q) of the service times of the ``tag`` requests in the window
        - p(q) of the service times of the control requests in the same window,

    service time counted from each request's actual start (the generator's own lag is not the
    service's). Percentiles are nearest-rank over exact arrays; a request never sent counts as
    infinitely slow.

    Why a difference of two percentiles, and not a percentile of paired differences (each
    request minus a control request near it in time): a stall of a few milliseconds only
    delays the requests in flight during it, and a control request next in the schedule is
    rarely among them, so pairing does not cancel the stall; it adds the control request's own
    noise to every difference, and the tail of those differences measures the spread of two
    noisy draws rather than a shift of the tail. Comparing the tails of two samples of the
    same window does cancel what both samples see equally often, which is what a machine-wide
    stall is, and needs nothing but enough samples in each.

    Cancelling a stall in expectation is not cancelling it in every window: at a p99 of a few
    hundred requests, a handful of stalled requests decide each percentile, and whether one
    group held one or two more of them moves the difference by milliseconds. So a value over
    the bound fails the SLO only when it is beyond the window's own noise: a permutation test
    on the window's requests (:func:`chaos.scenario._noise.excess_p_value`) must find the
    excess over ``max`` unlikely by chance (p at most
    :data:`~chaos.scenario._noise.SIGNIFICANCE`). Otherwise the result is ``inconclusive``: the
    measurement cannot say whether the bound was broken, and the arm is measured again or ends
    as ``error``, never as a failed guard. A value under the bound passes as measured.

    Measured again, it measures more: the requests of the window in every earlier attempt
    that kept its timeline (``RunData.earlier``: same schedule, same window) are pooled with
    this attempt's, so each rerun narrows the noise instead of drawing it anew (the
    description says how many attempts were pooled).

    Too few control requests to estimate the percentile (fewer than ``min_control``, default
    :data:`DEFAULT_MIN_CONTROL`), or no ``tag`` request at all, is a problem of the harness
    (:attr:`SLOResult.problem`: the arm ends as ``error``), never a pass. ``tag`` None measures
    every request that is not a control request.
    """

    name: str
    max: float
    window: str | None = None
    control_tag: str = "control"
    tag: str | Sequence[str] | None = None
    q: float = 99.0
    min_control: int = DEFAULT_MIN_CONTROL
    unit: str = "s"

    def __post_init__(self) -> None:
        if not 0 < self.q <= 100:
            raise ScenarioError(f"SLO {self.name!r}: q must be in (0, 100], got {self.q}")
        if self.min_control < 1:
            raise ScenarioError(
                f"SLO {self.name!r}: min_control must be >= 1, got {self.min_control}"
            )
        if self.tag is not None and self.control_tag in names_of(self.tag):
            raise ScenarioError(
                f"SLO {self.name!r}: tag and control_tag are both {self.control_tag!r}"
            )

    def _masks(
        self, run: RunData, load: LoadResult | None = None
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        load = run.load if load is None else load
        in_window = run.request_mask(self.window, load=load)
        control = in_window & load.tag_mask(self.control_tag)
        if self.tag is None:
            measured = in_window & ~load.tag_mask(self.control_tag)
        else:
            measured = run.request_mask(self.window, self.tag, load=load)
        return measured, control

    def _service_times(
        self, run: RunData
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Service times of the measured and of the control requests in the window, of this
        attempt and of every earlier one in ``run.earlier``, pooled."""
        measured, control = [], []
        for load in (run.load, *run.earlier):
            in_measured, in_control = self._masks(run, load)
            measured.append(load.service_time[in_measured])
            control.append(load.service_time[in_control])
        return np.concatenate(measured), np.concatenate(control)

    def evaluate(self, run: RunData) -> SLOResult:
        result = super().evaluate(run)
        if not run.earlier:
            return result
        pooled = f", requests of {len(run.earlier) + 1} attempts pooled"
        return dataclasses.replace(result, description=result.description + pooled)

    def problem(self, run: RunData) -> str | None:
        measured, control = self._masks(run)
        where = window_text(self.window)
        if int(control.sum()) < self.min_control:
            return (
                f"insufficient data: {int(control.sum())} {self.control_tag!r} requests in "
                f"{where}, need >= {self.min_control} to estimate a p{self.q:g}"
            )
        if not measured.any():
            who = tags_text(self.tag) if self.tag is not None else "non-control"
            return f"insufficient data: no {who} request in {where}"
        return None

    def measure(self, run: RunData) -> float | None:
        measured, control = self._service_times(run)
        value = percentile(measured, self.q)
        base = percentile(control, self.q)
        if value is None or base is None:
            return None
        return value - base

    def doubt(self, run: RunData, value: float, passed: bool) -> str | None:
        if passed:
            return None
        measured, control = self._service_times(run)
        p = excess_p_value(measured, control, q=self.q, bound=self.max)
        if p <= SIGNIFICANCE:
            return None
        return (
            f"{value * 1000:.1f} ms is over {self.max * 1000:g} ms by no more than the noise "
            f"of {window_text(self.window)}: relabelling its requests at random exceeds the "
            f"bound as much with p = {p:.3f} (a guard failure needs p <= {SIGNIFICANCE:g})"
        )

    def bound(self) -> tuple[Literal["<=", ">="], float]:
        return "<=", self.max

    def describe(self) -> str:
        who = tags_text(self.tag) if self.tag is not None else "guarded"
        return (
            f"p{self.q:g} service time of {who} requests minus that of {self.control_tag!r} "
            f"requests <= {self.max * 1000:g} ms, " + window_text(self.window)
        )


DEFAULT_MIN_BASELINE = 100
"""Fewest requests each window needs for :class:`LatencyGrowth` at its default ``q`` (99)."""


@dataclass(frozen=True)
class LatencyGrowth(SLOBase):
    """How much the ``q``-th percentile of service time of the ``tag`` requests grew in
    ``window`` over the same percentile in ``baseline`` (a window of the same run before the
    fault): ``p(q) in window / p(q) in baseline`` at most ``max`` ("the auth tenant's p99
    within 2x of its baseline"). Service time counts from each request's actual start; a
    request never sent counts as infinitely slow.

    Fewer than ``min_requests`` ``tag`` requests in either window is a problem of the harness
    (:attr:`SLOResult.problem`), never a pass or a failure.

    A growth over ``max`` fails only when it is more than the two windows' noise: a stall of a
    shared machine that hits a handful of requests of one window moves a p99 of a few hundred
    requests a long way. Were the window's requests exactly ``max`` times the baseline's, the
    window's service times divided by ``max`` and the baseline's would be one distribution; a
    permutation test on them (:func:`chaos.scenario._noise.excess_p_value`, bound 0) must find
    the observed excess unlikely by chance (p at most
    :data:`~chaos.scenario._noise.SIGNIFICANCE`), or the result is ``inconclusive``: measured
    again, never a failed guard.
    """

    name: str
    max: float
    window: str
    baseline: str
    tag: str | Sequence[str] | None = None
    q: float = 99.0
    min_requests: int = DEFAULT_MIN_BASELINE
    unit: str = "x"

    def __post_init__(self) -> None:
        if not 0 < self.q <= 100:
            raise ScenarioError(f"SLO {self.name!r}: q must be in (0, 100], got {self.q}")
        if not self.max > 0:
            raise ScenarioError(f"SLO {self.name!r}: max must be > 0, got {self.max}")
        if self.window == self.baseline:
            raise ScenarioError(f"SLO {self.name!r}: window and baseline are both {self.window!r}")

    def problem(self, run: RunData) -> str | None:
        for window in (self.baseline, self.window):
            count = int(run.request_mask(window, self.tag).sum())
            if count < self.min_requests:
                who = f"{tags_text(self.tag)} " if self.tag is not None else ""
                return (
                    f"insufficient data: {count} {who}requests in {window_text(window)}, "
                    f"need >= {self.min_requests} to estimate a p{self.q:g}"
                )
        return None

    def _times(self, run: RunData) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        times = run.load.service_time
        in_window = times[run.request_mask(self.window, self.tag)]
        return in_window, times[run.request_mask(self.baseline, self.tag)]

    def measure(self, run: RunData) -> float | None:
        in_window, in_baseline = self._times(run)
        value = percentile(in_window, self.q)
        base = percentile(in_baseline, self.q)
        if value is None or base is None or base <= 0:
            return None
        return value / base

    def doubt(self, run: RunData, value: float, passed: bool) -> str | None:
        if passed:
            return None
        in_window, in_baseline = self._times(run)
        p = excess_p_value(in_window / self.max, in_baseline, q=self.q, bound=0.0)
        if p <= SIGNIFICANCE:
            return None
        return (
            f"{value:.2f}x is over {self.max:g}x by no more than the noise of "
            f"{window_text(self.window)} and {window_text(self.baseline)}: relabelling their "
            f"requests at random exceeds it as much with p = {p:.3f} (a guard failure needs "
            f"p <= {SIGNIFICANCE:g})"
        )

    def bound(self) -> tuple[Literal["<=", ">="], float]:
        return "<=", self.max

    def describe(self) -> str:
        who = f" of {tags_text(self.tag)} requests" if self.tag is not None else ""
        return (
            f"p{self.q:g} service time{who} <= {self.max:g}x its p{self.q:g} in "
            f"{window_text(self.baseline)}, " + window_text(self.window)
        )


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
