"""Scenario ``rate-limiter-outage``: the rate limiter's store fails and everyone gets 429.

Incident (2026-06-02): the dependency behind request rate limiting became unhealthy, and the
service treated "the limiter could not answer" as "over the limit": callers who were nowhere
near a limit got HTTP 429. Here the store is Redis, behind a proxy, and the service is the
aiohttp service of ``examples/rate-limiter-outage/service.py``.

That file stays the one readable, runnable copy of the service; the wheel ships it too
(:mod:`chaos.scenarios._examples` says how, and finds it).

Topology: one ``redis-server``, a Toxiproxy proxy in front of it, and the service under test
(``rate_limit_middleware`` keyed by ``X-Api-Key``, every key limited to 25 requests/s with a
burst of 2; its health route ``/healthz`` exempt).

Load (open loop, constant arrivals, 600 requests/s, in groups of 8 consecutive requests: 4
ordinary, 3 control, 1 abusive, interleaved):

- 300 requests/s spread round-robin over 300 ordinary keys, so each ordinary key sends exactly
  one request per second, 25 times under its limit: *any* 429 for an ordinary key is false by
  construction;
- 75 requests/s of one abusive key, three times its limit;
- 225 requests/s to ``/healthz``, tagged ``control``: the same service, process, connections
  and middleware stack, minus the limiter (the middleware passes exempt routes through). They
  are the control group the added latency is measured against, and are not counted in any
  outcome share.

Arms, both with the same 20 ms budget on the Redis call:

- ``naive``: the incident's limiter: a thin wrapper that turns any error or timeout of the
  store into a denial ("0 units granted"), the way a quota adapter did;
- ``guarded``: ``build_app`` of the example: a ``FailOpenGuard`` over the ``RedisLimiter``,
  falling back to a ``LocalLimiter`` with this instance's share, with a breaker (5 faults in a
  row open it, one probe per second).

Fault timeline (default scale, seconds from load start; the first 3 s are healthy, so that
connections are warm and the breaker closed): each fault lasts 2.5 s, and 1.25 s of health
separate them, so that every fault hits a recovered guard (closed breaker) and has an onset of
its own (the breaker's probe finds Redis back within about 0.5 s of a fault's end):

====================  ============  ===================================================
fault                 span          what Redis looks like
====================  ============  ===================================================
``latency``           3.0-5.5       every reply 2 s late (100x the budget)
``timeout``           6.75-9.25     black hole: the connection stays open, nothing comes back
``reset_peer``        10.5-13.0     every connection reset at once
``disabled``          14.25-16.75   proxy down: connections dropped, new ones refused
recovery              16.75-19.75   healthy again; the guard must be back on Redis
====================  ============  ===================================================

*Added latency* (:class:`~chaos.scenario.AddedLatency`) of a window = the p99 service time
(from each request's actual start, so the generator's own scheduling lag is not counted) of
the limited requests (ordinary and abusive) in the window minus the p99 service time of the
control requests *in the same window*. A stall of the machine (GC, another process, a busy
core) hits both groups alike, so it cancels instead of being charged to the guard; comparing
with a window taken earlier did not (about 3 runs in 20 failed by 0.3-2.5 ms on a loaded
machine). A window with fewer than 100 control requests cannot estimate a p99: the arm then
ends as a harness error, never a pass.

Windows and why:

- ``<fault>-onset`` (first 0.75 s of each fault, ~280 limited and ~169 control requests): the
  breaker is closed when the fault starts, so the first requests spend the whole budget before
  five faults open it (about 30 ms at this rate: ~10 requests of the ~280, more than 1 %). Its
  p99 is therefore the budget itself; the bound is budget + 5 ms. 0.75 s holds the whole
  transition (tens of ms) with room for a late fault application, holds 100 control requests
  down to scale 0.6, and ends before the breaker's first probe (1 s after it opened).
- ``<fault>-open`` (the remaining 1.75 s, ~656 limited and ~394 control requests): the breaker
  is open, the guard answers from its fallback without calling Redis; bound 2 ms. A probe per
  second costs one request the budget (1 or 2 of the ~656, well under 1 %), so it does not
  move the p99.
- ``<fault>`` (the whole 2.5 s): the abusive key's allowed rate, and the naive arm's share of
  429s. A fallback starts with a fresh allowance, so over a fault the abusive key may get
  ``limit * 2.5 + 1 + burst`` requests: 26.2/s for a 25/s limit, under the 1.2x bound.
- ``recovered`` (the last 2 s, from 1 s after the proxy is back): ordinary requests are decided
  by Redis again. Not all: on a loaded machine a stall longer than the budget on the way to
  Redis opens the breaker for one probe interval (correctly), which costs a 1 s probe interval
  and the faults that tripped it, just over half the window; so the bound is 40 %
  (:data:`BACK_ON_REDIS`): one trip passes, two trips, or a guard not back within 1.2 s of the
  window's start, fail.
  That bound assumes Redis is healthy once the faults are over, and a busy machine can undo
  it on its own: a starved proxy or ``redis-server`` makes reconnections slower than the
  budget, so the breaker's probes keep failing (rightly); a stall longer than the budget times
  out the decisions in flight, five of which trip the breaker again. Either way the guard
  stays on its fallback because Redis did not answer in time, which is what the guard is
  for. So the premise ``redis-answered-when-recovered`` backs ``back-on-redis``: no decision
  in ``recovered`` met a Redis timeout or error (``redis_faults``, counted by the arm's limiter
  per gauge interval). Where it does not hold, a missed bound is ``inconclusive`` and the arm
  is run again; where it holds, Redis answered every call in time and a guard still off Redis
  failed for real (say, a breaker that never probes).

Outcome classes (:func:`classify`): ``ok`` (200, Redis decided), ``ok_degraded`` (200, the
guard's fallback decided), ``limited`` (429 for the abusive key: a true limit),
``false_429`` (429 for an ordinary key), ``control_ok`` (200 from ``/healthz``), ``error``
(any other status), plus the load's own ``timeout`` / ``conn_error`` / ``overflow``. The good
ones (``ok_outcomes``, for the progress display) are ``ok``, ``ok_degraded``, ``limited`` and
``control_ok``.

Hypothesis (the guarded arm keeps it; ``no-false-429`` is what the naive arm breaks): no false
429 among the limited requests and no error over the whole run; the abusive key's 200s per
second at most 1.2x its limit over the whole run and over each fault; p99 added latency within
budget + 5 ms at each onset and within 2 ms while the breaker is open; ordinary keys decided
by Redis again at the end. Signature of the incident (the naive arm shows it): at least 90 %
of the limited requests during each fault answered 429.

``--scale`` shortens every span and window (not the 2 s toxic latency, the 20 ms budget or the
breaker's 1 s probe interval). :data:`MIN_SCALE` is the smallest that keeps the scenario's
meaning: below it an onset window holds fewer than the 100 control requests a p99 needs (below
about 0.3, besides, a fault starts before the breaker's probe has found Redis back after the
previous one). ``chaos run --scale`` refuses a smaller factor up front, and says why (more
control requests would load the machine the latency is measured on).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from chaos.load import (
    OUTCOME_CLASSIFY_ERROR,
    OUTCOME_CONN_ERROR,
    OUTCOME_OVERFLOW,
    OUTCOME_TIMEOUT,
    Load,
    Reply,
    RequestSpec,
)
from chaos.scenario import (
    AddedLatency,
    AddToxic,
    Arm,
    ArmContext,
    DisableProxy,
    EnableProxy,
    Fault,
    Gauge,
    Incident,
    OutcomeRate,
    OutcomeRatio,
    Premise,
    Proxy,
    RedisServer,
    RemoveToxic,
    Scenario,
    SuccessRatio,
    Window,
)
from chaos.scenarios._examples import example_file, load_example
from chaos.scenarios._gauges import per_sample
from chaos.scenarios._naive_limiter import ErrorsCountAsLimited
from resilient.events import EventBus
from resilient.ratelimit import (
    FailOpenGuard,
    Rate,
    RedisLimiter,
    RedisLimiterOptions,
)

__all__ = [
    "ABUSIVE_KEY",
    "ABUSIVE_RATE",
    "BACK_ON_REDIS",
    "BUDGET",
    "CONTROL_PATH",
    "CONTROL_RATE",
    "EXAMPLE",
    "KEY_BURST",
    "KEY_LIMIT",
    "MIN_SCALE",
    "NORMAL_KEYS",
    "SCENARIOS",
    "ErrorsCountAsLimited",
    "classify",
    "request",
]

EXAMPLE = example_file("rate-limiter-outage")
"""The example service (``examples/rate-limiter-outage/service.py``, or the wheel's copy of that
file); the guarded arm is its ``build_app``."""

KEY_LIMIT = 25
"""Every key's limit, requests per second (the example's ``RATE``; checked when an arm builds)."""

KEY_BURST = 2
"""Every key's burst (the example's ``RATE``; checked)."""

BUDGET = 0.020
"""Seconds both arms give Redis per decision (the example guard's ``timeout``; checked)."""

API_KEY_HEADER = "X-Api-Key"
SOURCE_HEADER = "X-RateLimit-Source"

CONTROL_PATH = "/healthz"
"""The control group's route: the example's health route, exempt from the limit (checked)."""

NORMAL_KEYS = 300
"""Ordinary keys, served round-robin: one request per key per second at the normal rate."""

NORMAL_RATE = 300
"""Requests per second of the ordinary keys together."""

ABUSIVE_RATE = 75
"""Requests per second of the abusive key: three times its limit."""

ABUSIVE_KEY = "abuser"

CONTROL_RATE = 225
"""Requests per second of the control group (``/healthz``, not limited): enough for 100 of them
in every onset window down to :data:`MIN_SCALE`."""

MIN_SCALE = 0.6
"""The smallest ``--scale`` at which the scenario still replays the incident as described (see
the module docstring): 0.75 s x 0.6 x 225/s = 101 control requests in an onset window."""

_GROUP = ("normal", "control", "normal", "control", "normal", "control", "normal", "abusive")
"""Each run of 8 consecutive requests (1/75 s): 4 ordinary, 3 control, 1 abusive, interleaved
so that the control group samples the same instants as the limited requests."""

_NORMAL_SLOT = {slot: n for n, slot in enumerate(i for i, k in enumerate(_GROUP) if k == "normal")}
_PER_GROUP = len(_NORMAL_SLOT)

_LIMITED = ("normal", "abusive")
"""The tags of the requests the middleware limits (everything but the control group)."""

FAULT_LATENCY_MS = 2000
"""The latency fault's delay on every Redis reply: 100 times the budget."""

BACK_ON_REDIS = 0.4
"""The least share of ordinary requests decided by Redis in ``recovered``: at full scale one
trip of the breaker there (a probe interval, 1 s, of the 2 s window, plus the faults that
tripped it) passes, two do not; a trip at all means Redis did not answer in time, which the
premise ``redis-answered-when-recovered`` tells apart (see the module docstring)."""

ONSET = 0.75
"""Seconds at the start of each fault counted as its onset (see the module docstring)."""

_FIRST_FAULT = 3.0
_FAULT_SPAN = 2.5
_GAP = 1.25
_FAULT_STARTS = {
    name: _FIRST_FAULT + i * (_FAULT_SPAN + _GAP)
    for i, name in enumerate(("latency", "timeout", "reset_peer", "disabled"))
}
_LAST_END = _FAULT_STARTS["disabled"] + _FAULT_SPAN
_DURATION = _LAST_END + 3.0
_RECOVERED = Window("recovered", _LAST_END + 1.0, _DURATION)

_BAD_OUTCOMES = (
    "error",
    OUTCOME_TIMEOUT,
    OUTCOME_CONN_ERROR,
    OUTCOME_OVERFLOW,
    OUTCOME_CLASSIFY_ERROR,
)
_ALLOWED = ("ok", "ok_degraded")
_GOOD = ("ok", "ok_degraded", "limited", "control_ok")


# -- the load --------------------------------------------------------------------------------

_NORMAL_SPECS = tuple(
    RequestSpec(headers={API_KEY_HEADER: f"user-{k:03d}"}, tag="normal") for k in range(NORMAL_KEYS)
)
_ABUSIVE_SPEC = RequestSpec(headers={API_KEY_HEADER: ABUSIVE_KEY}, tag="abusive")
_CONTROL_SPEC = RequestSpec(path=CONTROL_PATH, tag="control")


def request(index: int, rng: random.Random) -> RequestSpec:
    """Request ``index``: by its slot in its group of 8 (``_GROUP``), a control request, the
    abusive key, or the next ordinary key in round-robin order."""
    group, slot = divmod(index, len(_GROUP))
    kind = _GROUP[slot]
    if kind == "control":
        return _CONTROL_SPEC
    if kind == "abusive":
        return _ABUSIVE_SPEC
    return _NORMAL_SPECS[(group * _PER_GROUP + _NORMAL_SLOT[slot]) % NORMAL_KEYS]


def classify(spec: RequestSpec, reply: Reply) -> str:
    """``ok`` / ``ok_degraded`` (200 by Redis / by the fallback), ``limited`` (429 for the
    abusive key), ``false_429`` (429 for an ordinary key), ``control_ok`` (200 from the
    control route), ``error`` (anything else)."""
    if spec.tag == "control":
        return "control_ok" if reply.status == 200 else "error"
    if reply.status == 200:
        return "ok" if reply.headers.get(SOURCE_HEADER) == "primary" else "ok_degraded"
    if reply.status == 429:
        return "limited" if spec.tag == "abusive" else "false_429"
    return "error"


_LOAD = Load(
    rate=NORMAL_RATE + ABUSIVE_RATE + CONTROL_RATE,
    duration=_DURATION,
    request=request,
    classify=classify,
    timeout=5.0,
)


# -- the arms --------------------------------------------------------------------------------


async def guarded(ctx: ArmContext) -> web.Application:
    """The example's service, as it is: fail-open guard over Redis."""
    example = _example()
    app = example.build_app(ctx.url("redis", scheme="redis", path="0"), events=_quiet_events())
    guard = app[example.guard_key]
    ctx.gauge("limiter_failing", lambda: float(guard.degraded))
    stats = guard.stats
    ctx.gauge(
        FAULTS_GAUGE,
        per_sample(lambda: stats.timeouts + stats.unavailable + stats.errors + stats.malformed),
    )
    return app


async def naive(ctx: ArmContext) -> web.Application:
    """The same service, its limiter wrapped so that a Redis failure is a denial."""
    example = _example()
    redis_limiter = RedisLimiter(
        ctx.url("redis", scheme="redis", path="0"),
        example.rate,
        options=example.redis_options,
        events=_quiet_events(),
    )
    limiter = ErrorsCountAsLimited(redis_limiter, timeout=BUDGET)
    ctx.gauge("limiter_failing", lambda: float(limiter.failing))
    ctx.gauge(FAULTS_GAUGE, per_sample(lambda: limiter.errors))
    return example.service_app(limiter, close=(redis_limiter.aclose,))


FAULTS_GAUGE = "redis_faults"
"""Redis calls of the arm's limiter that timed out or failed since the gauge's last sample."""


def _quiet_events() -> EventBus:
    """The arms' events are not logged: log lines would interleave with the progress display."""
    return EventBus(log_when_unobserved=False)


@dataclass(frozen=True)
class _Example:
    """What the arms take from ``examples/rate-limiter-outage/service.py``."""

    build_app: Callable[..., web.Application]
    service_app: Callable[..., web.Application]
    guard_key: web.AppKey[FailOpenGuard]
    rate: Rate
    redis_options: RedisLimiterOptions


@functools.cache
def _example() -> _Example:
    """Load the example service (once) and check it matches this scenario's numbers."""
    module = load_example("rate-limiter-outage")
    example = _Example(
        build_app=module.build_app,
        service_app=module.service_app,
        guard_key=module.GUARD,
        rate=module.RATE,
        redis_options=module.REDIS_OPTIONS,
    )
    expected = {
        "RATE": (example.rate, Rate(KEY_LIMIT, 1.0, KEY_BURST)),
        "GUARD_OPTIONS.timeout": (module.GUARD_OPTIONS.timeout, BUDGET),
        "API_KEY_HEADER": (module.API_KEY_HEADER, API_KEY_HEADER),
        "SOURCE_HEADER": (module.SOURCE_HEADER, SOURCE_HEADER),
        "HEALTH_PATH": (module.HEALTH_PATH, CONTROL_PATH),
    }
    for name, (found, wanted) in expected.items():
        if found != wanted:
            raise ValueError(
                f"{EXAMPLE}: {name} is {found!r}, but the scenario's load and SLOs assume "
                f"{wanted!r}; update chaos/scenarios/rate_limiter_outage.py with it"
            )
    return example


# -- timeline, windows, hypothesis -----------------------------------------------------------


def _faults() -> list[Fault]:
    starts = _FAULT_STARTS
    end = {name: at + _FAULT_SPAN for name, at in starts.items()}
    return [
        AddToxic(starts["latency"], "redis", "latency", "slow", {"latency": FAULT_LATENCY_MS}),
        RemoveToxic(end["latency"], "redis", "slow"),
        AddToxic(starts["timeout"], "redis", "timeout", "black-hole", {"timeout": 0}),
        RemoveToxic(end["timeout"], "redis", "black-hole"),
        AddToxic(starts["reset_peer"], "redis", "reset_peer", "reset", {"timeout": 0}),
        RemoveToxic(end["reset_peer"], "redis", "reset"),
        DisableProxy(starts["disabled"], "redis"),
        EnableProxy(end["disabled"], "redis"),
    ]


def _windows() -> list[Window]:
    windows = []
    for name, at in _FAULT_STARTS.items():
        windows += [
            Window(name, at, at + _FAULT_SPAN),
            Window(f"{name}-onset", at, at + ONSET),
            Window(f"{name}-open", at + ONSET, at + _FAULT_SPAN),
        ]
    windows.append(_RECOVERED)
    return windows


_SLO = OutcomeRatio | OutcomeRate | AddedLatency | SuccessRatio

_ABUSE_BOUND = 1.2 * KEY_LIMIT
_ONSET_BOUND = BUDGET + 0.005
_OPEN_BOUND = 0.002


def _hypothesis() -> list[_SLO]:
    slos: list[_SLO] = [
        OutcomeRatio("no-false-429", "false_429", max=0.0, tag=_LIMITED),
        OutcomeRatio("no-errors", _BAD_OUTCOMES, max=0.0),
        OutcomeRate("abusive-capped", _ALLOWED, tag="abusive", max=_ABUSE_BOUND),
    ]
    for name in _FAULT_STARTS:
        slos.append(
            OutcomeRate(
                f"abusive-capped-{name}", _ALLOWED, tag="abusive", window=name, max=_ABUSE_BOUND
            )
        )
    for name in _FAULT_STARTS:
        for phase, bound in (("onset", _ONSET_BOUND), ("open", _OPEN_BOUND)):
            slos.append(
                AddedLatency(
                    f"{name}-{phase}-p99-added",
                    max=bound,
                    window=f"{name}-{phase}",
                    tag=_LIMITED,
                    control_tag="control",
                )
            )
    slos.append(
        SuccessRatio(
            "back-on-redis", min=BACK_ON_REDIS, window=_RECOVERED.name, success="ok", tag="normal"
        )
    )
    return slos


def _premises() -> list[Premise]:
    answered = Gauge("redis-answered-when-recovered", FAULTS_GAUGE, max=0, window=_RECOVERED.name)
    return [Premise(answered, covers=("back-on-redis",))]


def _signature() -> list[_SLO]:
    return [
        OutcomeRatio(
            f"{name}-429-share", ("false_429", "limited"), min=0.9, window=name, tag=_LIMITED
        )
        for name in _FAULT_STARTS
    ]


SCENARIOS = [
    Scenario(
        name="rate-limiter-outage",
        incident=Incident(
            "2026-06-02-config-rollout-connection-storm-and-429s.txt",
            "the rate limiter's store became unhealthy and requests were rejected with 429",
        ),
        pattern="fail-open rate-limit guard (FailOpenGuard over RedisLimiter, breaker)",
        description=(
            "600 req/s: 300 ordinary keys (1 req/s each), one abusive key (3x its 25/s "
            "limit) and 225 control requests to the unlimited /healthz; Redis behind a proxy "
            "gets 2 s latency, a black hole, resets, then goes away, with 1.25 s of health "
            "between faults. Naive: a limiter error counts as a denial. Guarded: "
            "examples/rate-limiter-outage/service.py."
        ),
        load=_LOAD,
        servers=(RedisServer("redis"),),
        proxies=(Proxy("redis", upstream="redis"),),
        faults=_faults(),
        windows=_windows(),
        arms=(
            Arm("naive", "naive", naive, "Redis errors and timeouts count as 'limited'"),
            Arm("guarded", "guarded", guarded, "the example service: FailOpenGuard"),
        ),
        hypothesis=_hypothesis(),
        breaks=("no-false-429",),
        signature=_signature(),
        premises=_premises(),
        ok_outcomes=_GOOD,
        min_scale=MIN_SCALE,
        min_scale_reason=(
            "each 0.75 s onset window (times the scale) needs 100 control requests at "
            f"{CONTROL_RATE}/s to estimate a p99 added latency"
        ),
    )
]
