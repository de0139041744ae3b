"""The SLOs that judge a tail of latencies against a comparison measured in the same run: a
control group in the same window (:class:`AddedLatency`), or the same group in a baseline
window (:class:`LatencyGrowth`). Each fails only beyond the noise of what it compares
(:mod:`chaos.scenario._noise`); the other SLOs are in ``_slo.py``.
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
    RunData,
    SLOBase,
    SLOResult,
    names_of,
    percentile,
    tags_text,
    window_text,
)
from chaos.scenario._noise import SIGNIFICANCE, excess_p_value

__all__ = ["DEFAULT_MIN_BASELINE", "DEFAULT_MIN_CONTROL", "AddedLatency", "LatencyGrowth"]


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
