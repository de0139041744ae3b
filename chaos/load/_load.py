"""What a load is: its arrival rate and process, its requests, and the outcome classes.

A :class:`Load` is declared up front and turned into a schedule (:func:`schedule`) and a
sequence of :class:`RequestSpec` s before the first request, from one seed: the same seed
gives the same requests at the same offsets, in every arm and every run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_TIMEOUT",
    "OUTCOME_CLASSIFY_ERROR",
    "OUTCOME_CONN_ERROR",
    "OUTCOME_OVERFLOW",
    "OUTCOME_TIMEOUT",
    "Classifier",
    "Load",
    "LoadError",
    "Reply",
    "RequestFactory",
    "RequestSpec",
    "default_classify",
    "root_request",
    "schedule",
]

DEFAULT_TIMEOUT = 10.0
"""Seconds a request may take, from its actual start, before it is recorded as ``timeout``."""

DEFAULT_MAX_IN_FLIGHT = 4096
"""Requests in flight at once; a request due beyond it is recorded as ``overflow``."""

OUTCOME_TIMEOUT = "timeout"
"""The request did not finish within :attr:`Load.timeout`."""

OUTCOME_CONN_ERROR = "conn_error"
"""The connection failed (refused, reset, closed mid-response)."""

OUTCOME_OVERFLOW = "overflow"
"""The request was due while :attr:`Load.max_in_flight` requests were in flight; never sent."""

OUTCOME_CLASSIFY_ERROR = "classify_error"
"""The scenario's classifier raised; the first error is kept in :attr:`LoadResult.errors`."""


class LoadError(Exception):
    """The load could not be generated (bad declaration, the child process failed)."""


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request of the load: what to send (method, path, headers, body), and its group.

    ``tag`` names a group of requests that SLOs can filter on (e.g. ``"abusive"`` for the key
    that exceeds its limit); it is recorded per request.

    ``target`` sends the request to another server of the scenario's topology (by its name, or
    its proxy's) instead of the service under test: a second tenant of a shared backend, whose
    requests the SLOs judge beside the service's.
    """

    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] | None = None
    tag: str = ""
    body: bytes | None = None
    target: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """What the classifier sees of a response."""

    status: int
    headers: Mapping[str, str]
    body: bytes


RequestFactory = Callable[[int, random.Random], RequestSpec]
"""Builds request ``i`` of the run from the run's seeded generator (called before the start)."""

Classifier = Callable[[RequestSpec, Reply], str]
"""Names the outcome class of one answered request (``ok``, ``error``, ``false_429``, ...)."""


def root_request(index: int, rng: random.Random) -> RequestSpec:
    """The default request: ``GET /``."""
    return _ROOT


_ROOT = RequestSpec()


def default_classify(spec: RequestSpec, reply: Reply) -> str:
    """``ok`` for 2xx and 3xx, ``limited`` for 429, ``error`` for anything else."""
    if reply.status < 400:
        return "ok"
    if reply.status == 429:
        return "limited"
    return "error"


@dataclass(frozen=True)
class Load:
    """An open-loop load: arrival rate, duration, arrival process, and what each request is.

    ``rate`` is reached after ``ramp`` seconds of a linear ramp from ``ramp_from``; arrivals are
    evenly spaced (``constant``) or a Poisson process of the same rate (``poisson``). ``request``
    and ``classify`` must be module-level functions (they are sent to the load process by
    reference).
    """

    rate: float
    duration: float
    ramp: float = 0.0
    ramp_from: float = 0.0
    arrivals: Literal["constant", "poisson"] = "constant"
    request: RequestFactory = root_request
    classify: Classifier = default_classify
    timeout: float = DEFAULT_TIMEOUT
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"Load.rate must be a positive number of requests/s, got {self.rate}")
        if not (math.isfinite(self.duration) and self.duration > 0):
            raise ValueError(f"Load.duration must be positive seconds, got {self.duration}")
        if not (0 <= self.ramp <= self.duration):
            raise ValueError(f"Load.ramp must be within [0, duration], got {self.ramp}")
        if self.ramp > 0 and not (0 <= self.ramp_from <= self.rate):
            raise ValueError(f"Load.ramp_from must be within [0, rate], got {self.ramp_from}")
        if self.arrivals not in ("constant", "poisson"):
            raise ValueError(
                f"Load.arrivals must be 'constant' or 'poisson', got {self.arrivals!r}"
            )
        if not self.timeout > 0:
            raise ValueError(f"Load.timeout must be positive seconds, got {self.timeout}")
        if self.max_in_flight < 1:
            raise ValueError(f"Load.max_in_flight must be >= 1, got {self.max_in_flight}")

    def scaled(self, factor: float) -> Load:
        """The same load over ``factor`` times the duration (and ramp); rates unchanged."""
        return replace(self, duration=self.duration * factor, ramp=self.ramp * factor)

    @property
    def planned_requests(self) -> float:
        """The expected number of requests (exact for constant arrivals)."""
        return _cumulative(self, self.duration)


def schedule(load: Load, seed: int) -> npt.NDArray[np.float64]:
    """Start offsets (seconds from load start, ascending) of every request of ``load``.

    Arrivals are the points of a unit-rate process (evenly spaced, or Poisson from ``seed``)
    mapped through the inverse of the cumulative rate, so a ramp keeps the arrival process.
    """
    total = _cumulative(load, load.duration)
    if load.arrivals == "constant":
        units = np.arange(0.0, total, 1.0, dtype=np.float64)
    else:
        rng = np.random.default_rng(seed)
        gaps = rng.exponential(1.0, size=int(total + 10 * math.sqrt(total) + 10))
        units = np.cumsum(gaps) - gaps[0]
        while units[-1] < total:  # pragma: no cover - 10 sigma margin
            more = np.cumsum(rng.exponential(1.0, size=len(units))) + units[-1]
            units = np.concatenate([units, more])
        units = units[units < total]
    return _inverse_cumulative(load, units)


def _cumulative(load: Load, t: float) -> float:
    """Expected arrivals in [0, t]."""
    if load.ramp <= 0 or t <= 0:
        return load.rate * max(t, 0.0)
    slope = (load.rate - load.ramp_from) / load.ramp
    if t <= load.ramp:
        return load.ramp_from * t + slope * t * t / 2
    in_ramp = load.ramp_from * load.ramp + slope * load.ramp * load.ramp / 2
    return in_ramp + load.rate * (t - load.ramp)


def _inverse_cumulative(load: Load, units: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    if load.ramp <= 0:
        return units / load.rate
    r0, r1, tr = load.ramp_from, load.rate, load.ramp
    slope = (r1 - r0) / tr
    in_ramp = r0 * tr + slope * tr * tr / 2
    out = np.empty_like(units)
    ramping = units <= in_ramp
    u = units[ramping]
    if slope > 0:
        out[ramping] = (-r0 + np.sqrt(r0 * r0 + 2 * slope * u)) / slope
    else:
        out[ramping] = u / r0
    out[~ramping] = tr + (units[~ramping] - in_ramp) / r1
    return out
