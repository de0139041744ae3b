"""A scenario: an incident replayed against real servers, and the verdict on each arm.

A scenario is declarations plus arm code. It names its :class:`Incident` and the pattern it
proves; its topology (:class:`AiohttpServer`, :class:`RedisServer`, :class:`TcpServer`, each
started on a free loopback port, and a :class:`Proxy` in front of each dependency); a fault
timeline (:class:`AddToxic`, :class:`UpdateToxic`, :class:`RemoveToxic`, :class:`DisableProxy`,
:class:`EnableProxy`, at offsets in seconds from load start); the :class:`~chaos.load.Load`;
named :class:`Window` s; its :class:`Arm` s (at least one ``naive`` and one ``guarded``), each
building the service under test from an :class:`ArmContext`; and a steady-state hypothesis:
SLOs (:class:`SuccessRatio`, :class:`OutcomeRatio`, :class:`OutcomeRate`,
:class:`LatencyPercentile`, :class:`AddedLatency`, :class:`GaugeMax`, :class:`GaugeMin`) over
the whole run or a window. ``ok_outcomes`` names the outcome classes that are good for this
scenario (progress displays count the others as bad).

Verdicts:

- a guarded arm is ``mitigated`` when it keeps every SLO of the hypothesis, else ``failed``;
- a naive arm is ``reproduced`` when it breaks every SLO named in ``breaks`` and shows every
  check of the incident's ``signature`` (e.g. "at least 90 % of requests got 429"), else
  ``not-reproduced``;
- either is ``error`` when the harness could not run it, or could not measure an SLO
  (e.g. too few control requests in a window to estimate a percentile: ``SLOResult.problem``).

Every arm runs on the same timeline with the same seed (hence the same requests at the same
offsets). :meth:`Scenario.scaled` shortens every offset, duration and window by one factor.

The engine knows no pattern: patterns come in through the arms' code only.

A scenario module (in ``chaos/scenarios/``, or any module passed to ``chaos run
--scenarios-module``) is declarations plus arm code; ``tests/chaos/selftest_scenarios.py`` is
a complete one. In outline::

    async def guarded(ctx: ArmContext) -> web.Application:
        limiter = make_guarded_limiter(ctx.url("redis", scheme="redis", path="0"))
        ctx.gauge("fallback_decisions", lambda: limiter.counters.fallback)
        return build_service(limiter)          # an aiohttp app; teardown in app.on_cleanup

    SCENARIOS = [Scenario(
        name="rate-limiter-outage",
        incident=Incident("2026-06-02-....txt", "a sick limiter answered 429 to everyone"),
        pattern="fail-open rate-limit guard",
        load=Load(rate=300, duration=60, request=one_request, classify=classify),
        servers=(RedisServer("redis"),),
        proxies=(Proxy("redis", upstream="redis"),),
        faults=(AddToxic(10, "redis", "latency", "slow", {"latency": 2000}),
                RemoveToxic(20, "redis", "slow"), DisableProxy(40, "redis"),
                EnableProxy(50, "redis")),
        windows=(Window("before", 0, 10), Window("faults", 10, 50), Window("onset", 10, 11)),
        arms=(Arm("naive", "naive", naive), Arm("guarded", "guarded", guarded)),
        ok_outcomes=("ok", "ok_degraded", "limited"),
        hypothesis=(OutcomeRatio("no-false-429", "false_429", max=0, window="faults"),
                    OutcomeRate("abuser-capped", "ok", tag="abusive", max=12, window="faults"),
                    AddedLatency("onset-p99-added", window="onset", control_tag="control",
                                 max=0.025)),
        breaks=("no-false-429",),
        signature=(OutcomeRatio("mostly-429", ("false_429", "limited"), min=0.9,
                                window="faults"),),
    )]

``one_request(i, rng)`` returns a :class:`~chaos.load.RequestSpec` (path, headers, ``tag``)
and ``classify(spec, reply)`` names the outcome; both must be module-level functions, since
the load runs in its own process.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
import numpy.typing as npt

from chaos.load import Load, LoadResult

if TYPE_CHECKING:
    import asyncio

    from aiohttp import web

__all__ = [
    "AddToxic",
    "AddedLatency",
    "AiohttpServer",
    "Arm",
    "ArmContext",
    "DisableProxy",
    "EnableProxy",
    "Fault",
    "GaugeMax",
    "GaugeMin",
    "GaugeSeries",
    "Incident",
    "LatencyPercentile",
    "OutcomeRate",
    "OutcomeRatio",
    "Proxy",
    "RedisServer",
    "RemoveToxic",
    "RunData",
    "SLOResult",
    "Scenario",
    "ScenarioError",
    "Server",
    "SuccessRatio",
    "TcpServer",
    "UpdateToxic",
    "Verdict",
    "Window",
    "judge_guarded",
    "judge_naive",
]

Verdict = Literal["reproduced", "not-reproduced", "mitigated", "failed", "error"]
Role = Literal["naive", "guarded"]


class ScenarioError(ValueError):
    """A scenario declaration is inconsistent; the message names the scenario and the field."""


@dataclass(frozen=True)
class Incident:
    """The incident a scenario replays: its report in ``incidents/`` and one line about it."""

    file: str
    summary: str


# -- topology --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AiohttpServer:
    """An aiohttp backend on a free loopback port; ``app`` builds a fresh app for each arm."""

    name: str
    app: Callable[[], web.Application | Awaitable[web.Application]]


@dataclass(frozen=True)
class RedisServer:
    """A real ``redis-server`` on a free loopback port (fresh for each arm, no persistence)."""

    name: str = "redis"


@dataclass(frozen=True)
class TcpServer:
    """A plain TCP server on a free loopback port; ``handler`` serves one connection."""

    name: str
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


Server = AiohttpServer | RedisServer | TcpServer


@dataclass(frozen=True)
class Proxy:
    """A Toxiproxy proxy named ``name`` in front of the server named ``upstream``."""

    name: str
    upstream: str


# -- fault timeline --------------------------------------------------------------------------


@dataclass(frozen=True)
class AddToxic:
    """At ``at`` seconds from load start, add toxic ``name`` of ``type`` to ``proxy``."""

    at: float
    proxy: str
    type: str
    name: str
    attributes: Mapping[str, int] = field(default_factory=dict)
    stream: Literal["downstream", "upstream"] = "downstream"
    toxicity: float = 1.0

    def describe(self) -> str:
        attrs = ", ".join(f"{k}={v}" for k, v in self.attributes.items())
        return f"add {self.type} toxic {self.name!r} to {self.proxy} ({attrs})"


@dataclass(frozen=True)
class UpdateToxic:
    """At ``at``, change the attributes (and optionally toxicity) of toxic ``name``."""

    at: float
    proxy: str
    name: str
    attributes: Mapping[str, int] = field(default_factory=dict)
    toxicity: float | None = None

    def describe(self) -> str:
        attrs = ", ".join(f"{k}={v}" for k, v in self.attributes.items())
        return f"update toxic {self.name!r} on {self.proxy} ({attrs})"


@dataclass(frozen=True)
class RemoveToxic:
    """At ``at``, remove toxic ``name`` from ``proxy``."""

    at: float
    proxy: str
    name: str

    def describe(self) -> str:
        return f"remove toxic {self.name!r} from {self.proxy}"


@dataclass(frozen=True)
class DisableProxy:
    """At ``at``, disable ``proxy``: its listener closes and open connections drop."""

    at: float
    proxy: str

    def describe(self) -> str:
        return f"disable proxy {self.proxy}"


@dataclass(frozen=True)
class EnableProxy:
    """At ``at``, enable ``proxy`` again (same listen address)."""

    at: float
    proxy: str

    def describe(self) -> str:
        return f"enable proxy {self.proxy}"


Fault = AddToxic | UpdateToxic | RemoveToxic | DisableProxy | EnableProxy


@dataclass(frozen=True)
class Window:
    """A named span of the run, ``[start, end)`` seconds from load start."""

    name: str
    start: float
    end: float


# -- arms ------------------------------------------------------------------------------------


class ArmContext(Protocol):
    """What an arm's builder gets: where the topology is, and where to register gauges."""

    @property
    def seed(self) -> int:
        """The run's seed (the same for every arm)."""
        ...

    @property
    def scenario(self) -> Scenario:
        """The scenario being run (already scaled)."""
        ...

    def address(self, name: str) -> tuple[str, int]:
        """``(host, port)`` of proxy ``name``, or of server ``name`` when no proxy has it."""
        ...

    def direct_address(self, server: str) -> tuple[str, int]:
        """``(host, port)`` of server ``server`` itself, bypassing any proxy."""
        ...

    def url(self, name: str, scheme: str = "http", path: str = "") -> str:
        """``scheme://host:port/path`` of :meth:`address` (e.g. ``redis://...`` with ``/0``)."""
        ...

    def gauge(self, name: str, read: Callable[[], float | Awaitable[float]]) -> None:
        """Sample ``read()`` on the scenario's gauge interval during the load.

        ``read`` may be a coroutine function (e.g. ``INFO clients`` on the server's direct
        address); a sample it cannot give within one interval is recorded as NaN (missing),
        so a slow dependency never stalls the other gauges.
        """
        ...


ArmBuilder = Callable[[ArmContext], Awaitable["web.Application"]]


@dataclass(frozen=True)
class Arm:
    """One way of building the service under test; ``role`` is ``naive`` or ``guarded``.

    ``build`` returns the aiohttp application the load hits; the engine serves it on a free
    loopback port and cleans it up after the run (put teardown in ``app.on_cleanup``).
    """

    name: str
    role: Role
    build: ArmBuilder
    description: str = ""


# -- SLOs ------------------------------------------------------------------------------------


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


def _percentile(values: npt.NDArray[np.float64], q: float) -> float | None:
    """Nearest-rank ``q``-th percentile; NaN (never sent) counts as infinite; None if empty."""
    if len(values) == 0:
        return None
    finite = np.where(np.isnan(values), np.inf, values)
    return float(np.percentile(finite, q, method="inverted_cdf"))


@dataclass(frozen=True)
class GaugeMax(_SLO):
    """The largest sample of gauge ``gauge`` in the window stays at or below ``max``."""

    name: str
    gauge: str
    max: float
    window: str | None = None

    def measure(self, run: RunData) -> float | None:
        values = _gauge_values(run, self.gauge, self.window)
        return float(values.max()) if len(values) else None

    def bound(self) -> tuple[Literal["<=", ">="], float]:
        return "<=", self.max

    def describe(self) -> str:
        return f"max of gauge {self.gauge!r} <= {self.max:g}, " + _window_text(self.window)


@dataclass(frozen=True)
class GaugeMin(_SLO):
    """The smallest sample of gauge ``gauge`` in the window stays at or above ``min``."""

    name: str
    gauge: str
    min: float
    window: str | None = None

    def measure(self, run: RunData) -> float | None:
        values = _gauge_values(run, self.gauge, self.window)
        return float(values.min()) if len(values) else None

    def bound(self) -> tuple[Literal["<=", ">="], float]:
        return ">=", self.min

    def describe(self) -> str:
        return f"min of gauge {self.gauge!r} >= {self.min:g}, " + _window_text(self.window)


def _gauge_values(run: RunData, gauge: str, window: str | None) -> npt.NDArray[np.float64]:
    series = run.gauges.get(gauge)
    if series is None:
        return np.empty(0)
    values = series.values
    if window is not None:
        w = run.windows[window]
        values = values[(series.t >= w.start) & (series.t < w.end)]
    return values[~np.isnan(values)]


SLO = (
    SuccessRatio
    | OutcomeRatio
    | OutcomeRate
    | LatencyPercentile
    | AddedLatency
    | GaugeMax
    | GaugeMin
)


# -- the scenario ----------------------------------------------------------------------------

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

        Rates, toxic attributes (a 2 s latency stays 2 s) and bounds are unchanged.
        """
        if not (math.isfinite(factor) and factor > 0):
            raise ScenarioError(f"scale must be a positive number, got {factor}")
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


def _unique(s: Scenario, field_name: str, names: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ScenarioError(f"scenario {s.name!r}: {field_name}: {name!r} appears twice")
        seen.add(name)


# -- verdicts --------------------------------------------------------------------------------


def judge_guarded(
    scenario: Scenario, run: RunData
) -> tuple[Verdict, tuple[SLOResult, ...], tuple[SLOResult, ...]]:
    """``mitigated`` when every hypothesis SLO holds; the SLO results; no signature checks."""
    results = tuple(slo.evaluate(run) for slo in scenario.hypothesis)
    return ("mitigated" if all(r.passed for r in results) else "failed"), results, ()


def judge_naive(
    scenario: Scenario, run: RunData
) -> tuple[Verdict, tuple[SLOResult, ...], tuple[SLOResult, ...]]:
    """``reproduced`` when every SLO in ``breaks`` fails and every signature check holds."""
    results = tuple(slo.evaluate(run) for slo in scenario.hypothesis)
    signature = tuple(slo.evaluate(run) for slo in scenario.signature)
    broken = {r.name for r in results if not r.passed}
    reproduced = set(scenario.breaks) <= broken and all(r.passed for r in signature)
    return ("reproduced" if reproduced else "not-reproduced"), results, signature
