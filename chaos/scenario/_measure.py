"""What SLOs are measured on, what measuring gives, and the shape every SLO shares.

:class:`RunData` is one arm's run as the SLOs see it (requests, gauges, windows, and how well
the timeline was kept); :class:`SLOResult` is one SLO measured on it; ``SLOBase`` is the base
every SLO of :mod:`chaos.scenario._slo` extends (a name, a window, a bound, how to measure,
and when the harness cannot measure soundly or cannot decide), with the helpers they share.
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
    "GaugeSeries",
    "RunData",
    "SLOBase",
    "SLOResult",
    "bound_of",
    "gauge_values",
    "names_of",
    "outcomes_of",
    "percentile",
    "tags_text",
    "window_text",
]


@dataclass(frozen=True)
class GaugeSeries:
    """Samples of one gauge: times (seconds from load start) and values."""

    t: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]


@dataclass(frozen=True)
class RunData:
    """What SLOs are measured on: one arm's requests, gauges and the scenario's windows.

    ``gauge_interval`` is the seconds between two planned samples of every gauge (None: not
    known, and the coverage of the samples is not checked); ``fault_delays`` the seconds each
    fault of the timeline was applied after its planned offset. ``earlier`` holds the loads of
    earlier attempts of the same arm that kept their timeline but could not be judged (same
    schedule, same windows): an SLO that pools samples across attempts
    (:class:`~chaos.scenario.AddedLatency`) measures them too.
    """

    load: LoadResult
    gauges: Mapping[str, GaugeSeries]
    windows: Mapping[str, Window]
    gauge_interval: float | None = None
    fault_delays: tuple[float, ...] = ()
    earlier: tuple[LoadResult, ...] = ()

    def request_mask(
        self,
        window: str | None,
        tag: str | Sequence[str] | None = None,
        *,
        load: LoadResult | None = None,
    ) -> npt.NDArray[np.bool_]:
        """Requests of ``load`` (this attempt's by default) scheduled inside ``window`` (all
        when None), of group(s) ``tag`` if given."""
        load = self.load if load is None else load
        mask = np.ones(len(load.scheduled), dtype=np.bool_)
        if window is not None:
            w = self.windows[window]
            mask &= (load.scheduled >= w.start) & (load.scheduled < w.end)
        if tag is not None:
            mask &= np.logical_or.reduce([load.tag_mask(t) for t in names_of(tag)])
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
    harness could not measure it soundly (e.g. too few control requests): the arm ends as
    ``error`` (the harness's failure, not the guard's). ``inconclusive`` says why the measured
    value cannot decide whether the SLO held (``passed`` is then only the value against the
    bound): the arm's measurement is not trusted, and it is run again or ends as ``error``.
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
    inconclusive: str | None = None


class SLOBase:
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

    def doubt(self, run: RunData, value: float, passed: bool) -> str | None:
        """Why ``value`` (measured on ``run``) cannot decide this SLO (None: it can)."""
        return None

    def evaluate(self, run: RunData) -> SLOResult:
        """Measure on ``run`` and compare with the bound; a value is judged (``passed``) and
        doubted (``inconclusive``) only when it could be measured soundly."""
        problem = self.problem(run)
        value = None if problem is not None else self.measure(run)
        op, bound = self.bound()
        inconclusive = None
        if value is None or math.isnan(value):
            passed, value = False, None
        else:
            passed = value <= bound if op == "<=" else value >= bound
            inconclusive = self.doubt(run, value, passed)
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
            inconclusive=inconclusive,
        )


# -- helpers shared by the SLOs ------------------------------------------------------------


def bound_of(name: str, minimum: float | None, maximum: float | None) -> None:
    """Refuse an SLO given both bounds or neither (:class:`ScenarioError` naming it)."""
    if (minimum is None) == (maximum is None):
        raise ScenarioError(f"SLO {name!r}: give exactly one of min= or max=")


def window_text(window: str | None) -> str:
    """``window 'name'``, or ``whole run`` for None: how descriptions and messages name it."""
    return "whole run" if window is None else f"window {window!r}"


def names_of(value: str | Sequence[str]) -> tuple[str, ...]:
    """One name or several, as a tuple (a string is one name, not its letters)."""
    return (value,) if isinstance(value, str) else tuple(value)


outcomes_of = names_of
"""Outcome classes given as one name or several, as a tuple."""


def tags_text(tag: str | Sequence[str]) -> str:
    """Groups as a description names them: ``'normal'/'abusive'``."""
    return "/".join(repr(t) for t in names_of(tag))


def percentile(values: npt.NDArray[np.float64], q: float) -> float | None:
    """Nearest-rank ``q``-th percentile; NaN (never sent) counts as infinite; None if empty."""
    if len(values) == 0:
        return None
    finite = np.where(np.isnan(values), np.inf, values)
    return float(np.percentile(finite, q, method="inverted_cdf"))


def gauge_values(run: RunData, gauge: str, window: str | None) -> npt.NDArray[np.float64]:
    series = run.gauges.get(gauge)
    if series is None:
        return np.empty(0)
    values = series.values
    if window is not None:
        w = run.windows[window]
        values = values[(series.t >= w.start) & (series.t < w.end)]
    return values[~np.isnan(values)]
