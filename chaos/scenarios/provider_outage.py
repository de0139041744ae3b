"""Scenario ``provider-outage``: the model provider goes down, comes back slow, and recovers.

Incident (2026-04-20): ChatGPT, Codex and the API were down together for about an hour;
businesses whose only AI provider it was improvised fallbacks by hand (the single-cloud
report), and the February outage ended with "slow responses or intermittent glitches as
traffic stabilizes". Here the service under test is the client service of
``examples/provider-outage/service.py``, run as a fleet of :data:`REPLICAS` processes; two
model providers (stub aiohttp apps answering in 20 ms) sit behind proxies.

Timeline (default scale, seconds from load start):

==============  =================================================================
0-4             ``baseline``: the primary answers everything
4-12            ``outage``: the primary's proxy is disabled (connections refused)
12-18           ``slow``: the primary is back, 300 ms slower (a latency toxic)
18-26           ``recovered``: the primary as before
12-15           ``return``: the primary's load just after it comes back
==============  =================================================================

Arms, both a fleet of :data:`REPLICAS`:

- ``naive``: :class:`~chaos.scenarios._naive_provider.RetryAtOnce`: the primary only, each
  attempt cut at 200 ms and retried at once, 3 times, no budget, no jitter;
- ``guarded``: the example's ``build_app``: a ``Failover`` over both providers (a breaker
  each, the secondary's rate limit, one hedge after the primary's p95, a shared
  ``RetryBudget``, slow start, a degraded fallback).

Load (open loop, 80 requests a second): ``GET /ask?prompt=p<i>``, round-robin over the
replicas, a deadline of 1 s each (the example's ``DEADLINE``).

Hypothesis (the guarded arm keeps it over the whole run): at least 99% of requests answered by
a provider (``ok``); p99 latency within the deadline (1.1 s: the deadline and the load
generator's own slack); attempts never more than 1.2 per request, counted from the start
(gauge ``extra_attempts``: attempts less 1.2 x requests, summed over the fleet, at most 0 from
the first second on: its value is how far under that line the fleet stayed at worst);
the primary's load ramps back up after the outage (at most 60% of the load in nine samples in
ten of ``return``),
and it is back (at least 30% of the load in half of ``back``'s samples, 22 s on: its slow
start is not scaled, so at ``MIN_SCALE`` it is still ramping there). Signature
(the naive arm shows it): at least 90% of the outage's
requests failed, and the primary's attempts at 3x the load or more in half of ``slow``'s
samples: the retry storm.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from chaos.load import Load, Reply, RequestSpec
from chaos.scenario import (
    AddToxic,
    AiohttpServer,
    Arm,
    ArmContext,
    DisableProxy,
    EnableProxy,
    Gauge,
    Incident,
    LatencyPercentile,
    OutcomeRatio,
    Proxy,
    RemoveToxic,
    Scenario,
    SuccessRatio,
    Window,
)
from chaos.scenarios._examples import example_file, load_example
from chaos.scenarios._gauges import per_second
from chaos.scenarios._naive_provider import RetryAtOnce, naive_app
from resilient.events import EventBus

__all__ = ["EXAMPLE", "MIN_SCALE", "RATE", "REPLICAS", "SCENARIOS", "classify"]

EXAMPLE = example_file("provider-outage")
"""The guarded arm's service (shipped in the wheel, see :mod:`chaos.scenarios._examples`)."""

REPLICAS = 3
RATE = 80
"""Requests a second, over the fleet (the naive arm's storm is 4 attempts each)."""

MIN_SCALE = 0.6

_DURATION = 26.0
_BASELINE = Window("baseline", 1.0, 4.0)
_OUTAGE = Window("outage", 4.0, 12.0)
_SLOW = Window("slow", 12.0, 18.0)
_RETURN = Window("return", 12.0, 15.0)
_RECOVERED = Window("recovered", 18.0, _DURATION)
_RUN = Window("run", 1.0, _DURATION)
_BACK = Window("back", 22.0, _DURATION)
"""The primary's load once its slow start is mostly over."""
"""Everything after the first second (the attempts gauge starts at 0 before any request)."""
SLOW_MS = 300

_INTERVAL = 0.5
"""Seconds between gauge samples: a rate over 0.1 s counts a burst of the load generator, late
on a busy machine, as a jump of the primary's load (a sample of 62 a second, once, where the
ramp was at 15)."""

PRIMARY_GAUGE = "primary_attempts_per_s"
SECONDARY_GAUGE = "secondary_attempts_per_s"
EXTRA_GAUGE = "extra_attempts"
"""Attempts less 1.2 x requests since the start, summed over the fleet."""
ATTEMPTS_PER_REQUEST = 1.2


def _provider(name: str) -> AiohttpServer:
    return AiohttpServer(name, functools.partial(_stub, name))


def _stub(name: str) -> web.Application:
    stub: web.Application = _example().stub_provider(name)
    return stub


_SPECS = [RequestSpec(path=f"/ask?prompt=p{i}") for i in range(100)]


def request(index: int, rng: Any) -> RequestSpec:
    return _SPECS[index % len(_SPECS)]


def classify(spec: RequestSpec, reply: Reply) -> str:
    """``ok`` (a provider answered), ``degraded`` (the fallback did), ``failed``."""
    if reply.status != 200:
        return "failed"
    return "degraded" if reply.headers.get("X-Degraded") == "1" else "ok"


_LOAD = Load(rate=RATE, duration=_DURATION, request=request, classify=classify, timeout=5.0)


async def guarded(ctx: ArmContext) -> web.Application:
    """The example's client service: failover, hedging, budget, slow start, fallback."""
    example = _example()
    urls = {name: ctx.url(name) for name in example.PROVIDERS}
    app: web.Application = example.build_app(urls, events=EventBus(log_when_unobserved=False))
    failover = app[example.FAILOVER]
    lanes = {lane.name: lane for lane in failover.lanes}
    ctx.gauge(PRIMARY_GAUGE, per_second(lambda: lanes["primary"].stats.attempts))
    ctx.gauge(SECONDARY_GAUGE, per_second(lambda: lanes["secondary"].stats.attempts))

    def extra() -> float:
        attempts: int = sum(lane.stats.attempts for lane in lanes.values())
        requests: int = failover.budget.stats.requests
        return attempts - ATTEMPTS_PER_REQUEST * requests

    ctx.gauge(EXTRA_GAUGE, extra)
    return app


async def naive(ctx: ArmContext) -> web.Application:
    """The primary only, retried at once without a budget."""
    client = RetryAtOnce(ctx.url("primary"))
    ctx.gauge(PRIMARY_GAUGE, per_second(lambda: client.attempts))
    ctx.gauge(SECONDARY_GAUGE, lambda: 0.0)
    ctx.gauge(EXTRA_GAUGE, lambda: client.attempts - ATTEMPTS_PER_REQUEST * client.requests)
    return naive_app(client)


@functools.cache
def _example() -> Any:
    """Load the example service (once) and check it matches this scenario's numbers."""
    module = load_example("provider-outage")
    expected: Mapping[str, tuple[object, object]] = {
        "PROVIDERS": (module.PROVIDERS, ("primary", "secondary")),
        "DEADLINE": (module.DEADLINE, 1.0),
    }
    for name, (found, wanted) in expected.items():
        if found != wanted:
            raise ValueError(
                f"{EXAMPLE}: {name} is {found!r}, but the scenario's SLOs assume {wanted!r}; "
                "update chaos/scenarios/provider_outage.py with it"
            )
    return module


def _hypothesis() -> list[SuccessRatio | LatencyPercentile | Gauge]:
    return [
        SuccessRatio("answered", min=0.99),
        LatencyPercentile("p99-within-deadline", max=1.1, q=99),
        Gauge("attempts-within-1.2-per-request", EXTRA_GAUGE, max=0, window=_RUN.name),
        Gauge("primary-ramps-back", PRIMARY_GAUGE, max=0.6 * RATE, q=90, window=_RETURN.name),
        # 30%: the slow start's window (10 s) is not scaled, so at MIN_SCALE the primary is
        # still ramping in ``back`` (44 a second was measured there, 80 at scale 1); what this
        # says is that it came back at all (a primary passed over for good stays at 0).
        Gauge("primary-back", PRIMARY_GAUGE, min=0.3 * RATE, q=50, window=_BACK.name),
    ]


def _signature() -> list[OutcomeRatio | Gauge]:
    return [
        OutcomeRatio("outage-fails", "failed", min=0.9, window=_OUTAGE.name),
        Gauge("retry-storm", PRIMARY_GAUGE, min=3 * RATE, q=50, window=_SLOW.name),
    ]


SCENARIOS = [
    Scenario(
        name="provider-outage",
        incident=Incident(
            "2026-04-20-widespread-chatgpt-codex-api-outage.txt",
            "the model provider was down for an hour; clients had nowhere else to go, and "
            "retried at once when it came back",
        ),
        pattern="failover with breakers, hedging and a retry budget (Failover, RetryBudget)",
        description=(
            f"{REPLICAS} replicas of a client service ask a primary model provider; it goes "
            "down, comes back 300 ms slower, then recovers. Naive: the primary only, retried at "
            "once. Guarded: examples/provider-outage/service.py."
        ),
        load=_LOAD,
        servers=(_provider("primary"), _provider("secondary")),
        proxies=(Proxy("primary", upstream="primary"), Proxy("secondary", upstream="secondary")),
        faults=(
            DisableProxy(_OUTAGE.start, "primary"),
            EnableProxy(_SLOW.start, "primary"),
            AddToxic(_SLOW.start, "primary", "latency", "slow", {"latency": SLOW_MS}),
            RemoveToxic(_SLOW.end, "primary", "slow"),
        ),
        windows=(_BASELINE, _OUTAGE, _SLOW, _RETURN, _RECOVERED, _RUN, _BACK),
        arms=(
            Arm("naive", "naive", naive, "the primary only, retried at once", REPLICAS),
            Arm("guarded", "guarded", guarded, "the example: failover and hedging", REPLICAS),
        ),
        hypothesis=_hypothesis(),
        breaks=("answered", "attempts-within-1.2-per-request", "primary-ramps-back"),
        signature=_signature(),
        ok_outcomes=("ok",),
        gauge_interval=_INTERVAL,
        min_scale=MIN_SCALE,
        min_scale_reason=(
            "the return window must hold at least one gauge sample after the primary's "
            "breaker probes it (every second)"
        ),
    )
]
