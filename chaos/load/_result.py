"""What a load recorded: every request as parallel arrays, and live progress while it runs.

A :class:`LoadResult` holds, per request, when it was scheduled, when it started and finished,
its status, outcome and group; latency counts from the scheduled time, service time from the
actual start, and the generator's own lag (actual minus scheduled start) decides whether the
run can be trusted (:data:`MAX_TRUSTED_LAG`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_TRUSTED_LAG", "LoadProgress", "LoadResult"]

MAX_TRUSTED_LAG = 0.005
"""A run whose scheduling lag p99 exceeds this (seconds) is flagged as not trustworthy."""


@dataclass(frozen=True)
class LoadProgress:
    """A live snapshot of a running load."""

    elapsed: float
    planned: float
    sent: int
    completed: int
    outcomes: Mapping[str, int]


@dataclass
class LoadResult:
    """Every request of one run, as parallel arrays indexed by request.

    Times are seconds from load start (``t0``); ``started`` and ``finished`` are NaN for
    ``overflow`` requests, which were never sent. ``outcome`` and ``tag`` index
    ``outcome_names`` and ``tag_names``; ``status`` is 0 when there was no HTTP answer.
    """

    t0: float
    duration: float
    scheduled: npt.NDArray[np.float64]
    started: npt.NDArray[np.float64]
    finished: npt.NDArray[np.float64]
    status: npt.NDArray[np.int16]
    outcome: npt.NDArray[np.int16]
    tag: npt.NDArray[np.int16]
    outcome_names: list[str]
    tag_names: list[str]
    errors: list[str] = field(default_factory=list)
    event_loop: str = "asyncio"

    @property
    def latency(self) -> npt.NDArray[np.float64]:
        """Seconds from the scheduled start to the end of the request (NaN if never sent)."""
        return self.finished - self.scheduled

    @property
    def service_time(self) -> npt.NDArray[np.float64]:
        """Seconds from the actual start to the end of the request (NaN if never sent)."""
        return self.finished - self.started

    @property
    def lag(self) -> npt.NDArray[np.float64]:
        """Scheduling lag of every sent request: actual start minus scheduled start."""
        lag = self.started - self.scheduled
        return lag[~np.isnan(lag)]

    def lag_p99(self) -> float:
        """The 99th percentile of the scheduling lag, seconds (0 for an empty run)."""
        lag = self.lag
        return float(np.percentile(lag, 99)) if len(lag) else 0.0

    @property
    def trustworthy(self) -> bool:
        """Whether the generator kept its schedule: lag p99 <= :data:`MAX_TRUSTED_LAG`."""
        return self.lag_p99() <= MAX_TRUSTED_LAG

    def outcome_mask(self, *names: str) -> npt.NDArray[np.bool_]:
        """Requests whose outcome is one of ``names``."""
        codes = [self.outcome_names.index(n) for n in names if n in self.outcome_names]
        return np.isin(self.outcome, codes)

    def tag_mask(self, name: str) -> npt.NDArray[np.bool_]:
        """Requests of the group ``name``."""
        if name not in self.tag_names:
            return np.zeros(len(self.tag), dtype=np.bool_)
        return np.asarray(self.tag == self.tag_names.index(name))

    def counts(self, mask: npt.NDArray[np.bool_] | None = None) -> dict[str, int]:
        """Requests per outcome class (optionally among ``mask``), zero counts left out."""
        outcome = self.outcome if mask is None else self.outcome[mask]
        found = np.bincount(outcome, minlength=len(self.outcome_names))
        return {name: int(n) for name, n in zip(self.outcome_names, found, strict=True) if n}
