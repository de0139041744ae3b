"""SLOs: what a scenario's steady-state hypothesis and its incident's signature are made of.

Each SLO measures one number on one arm's :class:`RunData` (its requests, its gauges, the
scenario's windows), over the whole run or one window, and compares it with one bound:
:class:`SuccessRatio`, :class:`OutcomeRatio`, :class:`OutcomeRate`, :class:`LatencyPercentile`,
:class:`AddedLatency` and :class:`Gauge`. Its :class:`SLOResult` says
whether it held, and, when the harness could not measure it soundly (too few samples),
why (``problem``): such an arm ends as ``error``, never as a pass or a failed guard.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from chaos.load import LoadResult
from chaos.scenario._errors import ScenarioError
from chaos.scenario._timeline import Window

__all__ = [
    "DEFAULT_MIN_CONTROL",
    "SLO",
    "AddedLatency",
    "Gauge",
    "GaugeSeries",
    "LatencyPercentile",
    "OutcomeRate",
    "OutcomeRatio",
    "RunData",
    "SLOResult",
    "SuccessRatio",
]


@dataclass(frozen=True)
class GaugeSeries:
    """Samples of one gauge: times (seconds from load start) and values."""

    t: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]


@dataclass(frozen=True)
class RunData:
    """What SLOs are measured on: one arm's requests, gauges and the scenario's windows."""

    load: LoadResult
    gauges: Mapping[str, GaugeSeries]
    windows: Mapping[str, Window]

    def request_mask(
        self, window: str | None, tag: str | Sequence[str] | None = None
    ) -> npt.NDArray[np.bool_]:
        """Requests scheduled inside ``window`` (all when None), of group(s) ``tag`` if given."""
        mask = np.ones(len(self.load.scheduled), dtype=np.bool_)
        if window is not None:
            w = self.windows[window]
            mask &= (self.load.scheduled >= w.start) & (self.load.scheduled < w.end)
        if tag is not None:
            mask &= np.logical_or.reduce([self.load.tag_mask(t) for t in _names(tag)])
        return mask

    def span(self, window: str | None) -> float:
        """The length of ``window`` in seconds (the load's duration when None)."""
        if window is None:
            return self.load.duration
        w = self.windows[window]
        return w.end - w.start


@dataclass(frozen=True)
class SLOResult:
    """One SLO measured on one arm: value, bound, and whether it held.

    ``value`` is None when there was nothing to measure (no request or no sample in the
    window); such an SLO does not hold, since nothing proves it. ``problem`` says why the
    harness could not measure it soundly (e.g. too few control requests); the engine turns an
    arm with such an SLO into verdict ``error`` (the harness's failure, not the guard's).
    """

    name: str
    kind: str
    description: str
    window: str | None
    value: float | None
    op: Literal["<=", ">="]
    bound: float
    unit: str
    passed: bool
    problem: str | None = None


class _SLO:
    """Shared shape of every SLO: a name, a window, a bound and how to measure."""

    name: str
    window: str | None
    unit: str = ""

    def measure(self, run: RunData) -> float | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def bound(self) -> tuple[Literal["<=", ">="], float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def problem(self, run: RunData) -> str | None:
        """Why this SLO cannot be measured soundly on ``run`` (None: it can)."""
        return None

    def evaluate(self, run: RunData) -> SLOResult:
        problem = self.problem(run)
        value = None if problem is not None else self.measure(run)
        op, bound = self.bound()
        if value is None or math.isnan(value):
            passed, value = False, None
        else:
            passed = value <= bound if op == "<=" else value >= bound
        return SLOResult(
            name=self.name,
            kind=type(self).__name__,
            description=self.describe(),
            window=self.window,
            value=value,
            op=op,
            bound=bound,
            unit=self.unit,
            passed=passed,
            problem=problem,
        )


@dataclass(frozen=True)
class SuccessRatio(_SLO):
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
        return float((mask & run.load.outcome_mask(*_outcomes(self.success))).sum()) / total

    def bound(self) -> tuple[Literal["<=", ">="], float]:
        return ">=", self.min

    def describe(self) -> str:
        return f"share of {'/'.join(_outcomes(self.success))} >= {self.min:g}, " + _window_text(
            self.window
        )


@dataclass(frozen=True)
class OutcomeRatio(_SLO):
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
        _bound_of(self.name, self.min, self.max)

    def measure(self, run: RunData) -> float | None:
        mask = run.request_mask(self.window, self.tag)
        total = int(mask.sum())
        if total == 0:
            return None
        return float((mask & run.load.outcome_mask(*_outcomes(self.outcome))).sum()) / total

    def bound(self) -> tuple[Literal["<=", ">="], float]:
        return ("<=", self.max) if self.max is not None else (">=", self.min or 0.0)

    def describe(self) -> str:
        op, bound = self.bound()
        who = f" of {_tags_text(self.tag)} requests" if self.tag else ""
        return f"share{who} {'/'.join(_outcomes(self.outcome))} {op} {bound:g}, " + _window_text(
            self.window
        )


@dataclass(frozen=True)
class OutcomeRate(_SLO):
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
        _bound_of(self.name, self.min, self.max)

    def measure(self, run: RunData) -> float | None:
        mask = run.request_mask(self.window, self.tag) & run.load.outcome_mask(
            *_outcomes(self.outcome)
        )
        span = run.span(self.window)
        return float(mask.sum()) / span if span > 0 else None

    def bound(self) -> tuple[Literal["<=", ">="], float]:
        return ("<=", self.max) if self.max is not None else (">=", self.min or 0.0)

    def describe(self) -> str:
        op, bound = self.bound()
        who = f" of {_tags_text(self.tag)}" if self.tag else ""
        return f"rate{who} {'/'.join(_outcomes(self.outcome))} {op} {bound:g} req/s, " + (
            _window_text(self.window)
        )


@dataclass(frozen=True)
class LatencyPercentile(_SLO):
    """The ``q``-th percentile of latency (seconds, from the *scheduled* start) in a window.

    Percentiles are nearest-rank (the smallest value with at least ``q`` % of requests at or
    below it), over exact arrays. Requests never sent (``overflow``) count as infinitely slow.
    ``measure_from="started"`` uses service time (from the actual start) instead. For latency
    *added* by a guard, see :class:`AddedLatency`.
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
            mask &= run.load.outcome_mask(*_outcomes(self.outcome))
        source = run.load.latency if self.measure_from == "scheduled" else run.load.service_time
        return _percentile(source[mask], self.q)

    def bound(self) -> tuple[Literal["<=", ">="], float]:
        return "<=", self.max

    def describe(self) -> str:
        return f"p{self.q:g} latency <= {self.max * 1000:g} ms, " + _window_text(self.window)


DEFAULT_MIN_CONTROL = 100
"""Fewest control requests a window needs for :class:`AddedLatency` at its default ``q`` (99):
below 100 samples a nearest-rank 99th percentile is just the maximum."""


@dataclass(frozen=True)
class AddedLatency(_SLO):
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
        if self.tag is not None and self.control_tag in _names(self.tag):
            raise ScenarioError(
                f"SLO {self.name!r}: tag and control_tag are both {self.control_tag!r}"
            )

    def _masks(self, run: RunData) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        in_window = run.request_mask(self.window)
        control = in_window & run.load.tag_mask(self.control_tag)
        if self.tag is None:
            measured = in_window & ~run.load.tag_mask(self.control_tag)
        else:
            measured = run.request_mask(self.window, self.tag)
        return measured, control

    def problem(self, run: RunData) -> str | None:
        measured, control = self._masks(run)
        where = _window_text(self.window)
        if int(control.sum()) < self.min_control:
            return (
                f"insufficient data: {int(control.sum())} {self.control_tag!r} requests in "
                f"{where}, need >= {self.min_control} to estimate a p{self.q:g}"
            )
        if not measured.any():
            who = _tags_text(self.tag) if self.tag is not None else "non-control"
            return f"insufficient data: no {who} request in {where}"
        return None

    def measure(self, run: RunData) -> float | None:
        measured, control = self._masks(run)
        service = run.load.service_time
        value = _percentile(service[measured], self.q)
        base = _percentile(service[control], self.q)
        if value is None or base is None:
            return None
        return value - base

    def bound(self) -> tuple[Literal["<=", ">="], float]:
        return "<=", self.max

    def describe(self) -> str:
        who = _tags_text(self.tag) if self.tag is not None else "guarded"
        return (
            f"p{self.q:g} service time of {who} requests minus that of {self.control_tag!r} "
            f"requests <= {self.max * 1000:g} ms, " + _window_text(self.window)
        )


@dataclass(frozen=True)
class Gauge(_SLO):
    """The samples of gauge ``gauge`` in the window stay within one bound.

    Give ``max`` for a level that must never be exceeded (open connections at most 8: the
    largest sample is measured), or ``min`` for one that must never be undercut (capacity at
    least 4: the smallest sample is measured); exactly one of them, as for
    :class:`OutcomeRatio`. Samples the gauge could not give in time (NaN) are left out; a
    window with no sample measures nothing, and so does not hold.
    """

    name: str
    gauge: str
    max: float | None = None
    min: float | None = None
    window: str | None = None

    def __post_init__(self) -> None:
        _bound_of(self.name, self.min, self.max)

    def measure(self, run: RunData) -> float | None:
        values = _gauge_values(run, self.gauge, self.window)
        if not len(values):
            return None
        return float(values.max()) if self.max is not None else float(values.min())

    def bound(self) -> tuple[Literal["<=", ">="], float]:
        return ("<=", self.max) if self.max is not None else (">=", self.min or 0.0)

    def describe(self) -> str:
        op, bound = self.bound()
        extreme = "max" if op == "<=" else "min"
        return f"{extreme} of gauge {self.gauge!r} {op} {bound:g}, " + _window_text(self.window)


SLO = SuccessRatio | OutcomeRatio | OutcomeRate | LatencyPercentile | AddedLatency | Gauge
"""Every kind of SLO a scenario's hypothesis and signature can hold."""


# -- helpers ---------------------------------------------------------------------------------


def _bound_of(name: str, minimum: float | None, maximum: float | None) -> None:
    if (minimum is None) == (maximum is None):
        raise ScenarioError(f"SLO {name!r}: give exactly one of min= or max=")


def _window_text(window: str | None) -> str:
    return "whole run" if window is None else f"window {window!r}"


def _names(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


_outcomes = _names


def _tags_text(tag: str | Sequence[str]) -> str:
    return "/".join(repr(t) for t in _names(tag))


def _percentile(values: npt.NDArray[np.float64], q: float) -> float | None:
    """Nearest-rank ``q``-th percentile; NaN (never sent) counts as infinite; None if empty."""
    if len(values) == 0:
        return None
    finite = np.where(np.isnan(values), np.inf, values)
    return float(np.percentile(finite, q, method="inverted_cdf"))


def _gauge_values(run: RunData, gauge: str, window: str | None) -> npt.NDArray[np.float64]:
    series = run.gauges.get(gauge)
    if series is None:
        return np.empty(0)
    values = series.values
    if window is not None:
        w = run.windows[window]
        values = values[(series.t >= w.start) & (series.t < w.end)]
    return values[~np.isnan(values)]
