"""A scenario: an incident replayed against real servers, and the verdict on each arm.

A scenario is declarations plus arm code. It names its :class:`Incident` and the pattern it
proves; its topology (:class:`AiohttpServer`, :class:`RedisServer`, :class:`TcpServer`, each
started on a free loopback port, and a :class:`Proxy` in front of each dependency); a fault
timeline (:class:`AddToxic`, :class:`UpdateToxic`, :class:`RemoveToxic`, :class:`DisableProxy`,
:class:`EnableProxy`, at offsets in seconds from load start); the :class:`~chaos.load.Load`;
named :class:`Window` s; its :class:`Arm` s (at least one ``naive`` and one ``guarded``), each
building the service under test from an :class:`ArmContext`; and a steady-state hypothesis: SLOs
(:class:`SuccessRatio`, :class:`OutcomeRatio`, :class:`OutcomeRate`, :class:`LatencyPercentile`,
:class:`AddedLatency`, :class:`LatencyGrowth`, :class:`Gauge`) over the whole run or a window,
and the :class:`Premise` s about the environment some of them rely on.
``ok_outcomes`` names the outcome classes that are good for this scenario (progress displays
count the others as bad).

Verdicts (:mod:`chaos.scenario._verdicts`, which also says what "trusted" means):

- a guarded arm is ``mitigated`` when no SLO of the hypothesis is shown broken, ``failed``
  when one is, by a measurement the harness trusts;
- a naive arm is ``reproduced`` when it breaks every SLO named in ``breaks`` and shows every
  check of the incident's ``signature`` (e.g. "at least 90 % of requests got 429"), else
  ``not-reproduced``;
- either is ``error`` when the harness could not run it, could not measure an SLO (e.g. too
  few control requests in a window to estimate a percentile: ``SLOResult.problem``), or could
  not trust its measurement (the timeline ran late, a gauge went unsampled, a value over its
  bound by no more than the noise of its window: ``SLOResult.inconclusive``). An untrusted
  arm can be run again (``chaos run --retries``).

Every arm runs on the same timeline with the same seed (hence the same requests at the same
offsets). :meth:`Scenario.scaled` shortens every offset, duration and window by one factor.

The engine knows no pattern: patterns come in through the arms' code only.

One module per part, every public name re-exported here: ``_topology`` (servers, proxies),
``_timeline`` (faults, windows), ``_arms`` (arms and what they get), ``_measure`` (the run
data SLOs measure, their results and shared shape), ``_slo`` (the SLOs; those that compare
two groups of latencies in ``_compared``), ``_noise`` (whether a
difference of percentiles is beyond its window's noise), ``_premise`` (what a scenario assumes
of its environment), ``_scenario`` (:class:`Scenario`,
:class:`Incident`, the checks made when one is built) and ``_verdicts``.

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

Beside the faults, an arm may put steps of its own on the timeline (``ctx.at(offset, step,
what)``: a plan published to a scheduler, an operator's action; run in offset order with the
faults, recorded and judged like them), take its proxies away and back
(``ctx.disable_proxy``, ``ctx.enable_proxy``) and add notes to its report (``ctx.note``);
``chaos/scenarios/queued_actions_burst.py`` does all three.

``one_request(i, rng)`` returns a :class:`~chaos.load.RequestSpec` (path, headers, ``tag``)
and ``classify(spec, reply)`` names the outcome; both must be module-level functions, since
the load runs in its own process.

**Fleets.** An incident that happens to a fleet (every replica reconnecting at once) needs the
service run as several processes: ``Arm("guarded", "guarded", guarded, replicas=4)``. The
engine then starts 4 replica processes (``chaos/_fleet.py``), each importing ``guarded`` by
reference (so it must be a module-level function) and building the service on its own event
loop with its own :class:`ArmContext` (``ctx.replica`` is ``(index, 4)``); the load is spread
over them round-robin; each gauge is the sum of the replicas' readings (a replica that could
not answer makes the sample NaN, never a smaller sum); each ``ctx.at`` step runs in every
replica at its offset; notes carry their replica's index. Every replica must register the same
gauges and steps. ``chaos/scenarios/connection_storm.py`` is one.

**Other tenants.** A dependency shared with another service is a server of the topology too: an
:class:`AiohttpServer` whose factory takes one argument gets the ``(host, port)`` of every
server declared before it, so the other tenant finds the shared backend; a load request with
``RequestSpec(target="auth")`` goes to the server (or proxy) of that name instead of the service
under test; and :class:`LatencyGrowth` judges how much a tenant's tail grew against a baseline
window of the same run.
"""

from __future__ import annotations

from chaos.scenario._arms import Arm, ArmBuilder, ArmContext, Role
from chaos.scenario._errors import ScenarioError
from chaos.scenario._measure import GaugeSeries, RunData, SLOResult
from chaos.scenario._premise import Premise
from chaos.scenario._scenario import DEFAULT_BUCKET, DEFAULT_GAUGE_INTERVAL, Incident, Scenario
from chaos.scenario._slo import (
    DEFAULT_MIN_CONTROL,
    MAX_GAUGE_GAP,
    SLO,
    AddedLatency,
    Gauge,
    LatencyGrowth,
    LatencyPercentile,
    OutcomeRate,
    OutcomeRatio,
    SuccessRatio,
)
from chaos.scenario._timeline import (
    AddToxic,
    DisableProxy,
    EnableProxy,
    Fault,
    RemoveToxic,
    UpdateToxic,
    Window,
)
from chaos.scenario._topology import AiohttpServer, Proxy, RedisServer, Server, TcpServer
from chaos.scenario._verdicts import (
    MAX_SLIP_SHARE,
    Judgement,
    Verdict,
    judge_guarded,
    judge_naive,
    max_timeline_slip,
)

__all__ = [
    "DEFAULT_BUCKET",
    "DEFAULT_GAUGE_INTERVAL",
    "DEFAULT_MIN_CONTROL",
    "MAX_GAUGE_GAP",
    "MAX_SLIP_SHARE",
    "SLO",
    "AddToxic",
    "AddedLatency",
    "AiohttpServer",
    "Arm",
    "ArmBuilder",
    "ArmContext",
    "DisableProxy",
    "EnableProxy",
    "Fault",
    "Gauge",
    "GaugeSeries",
    "Incident",
    "Judgement",
    "LatencyGrowth",
    "LatencyPercentile",
    "OutcomeRate",
    "OutcomeRatio",
    "Premise",
    "Proxy",
    "RedisServer",
    "RemoveToxic",
    "Role",
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
    "max_timeline_slip",
]
