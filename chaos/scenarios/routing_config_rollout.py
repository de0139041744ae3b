"""Scenario ``routing-config-rollout``: a routing configuration change breaks some regions and
not others.

Incident (February 2026): a "routing or backend configuration issue" took ChatGPT down
unevenly, "some users were able to access ChatGPT without issues, others in the same regions
encountered repeated error messages", concentrated in "specific infrastructure segments". Here
the service under test is the router of ``examples/routing-config-rollout/service.py``, run as
a fleet of :data:`REPLICAS` processes that share their configuration through Redis; each
region (``eu``, ``us``, ``asia``) has its own backend behind a proxy, and a ``new`` backend
stands ready, behind its own proxy.

Timeline (default scale, seconds from load start):

==============  =================================================================
0-4             ``baseline``: every region on its own backend
2               the connection-storm configuration of 2026-06-02 is proposed (pool
                settings whose fleet total exceeds the backend: 3 x 500 connections)
3               the ``new`` backend black-holes (a ``timeout`` toxic: it never answers)
4               the routing change: ``eu`` and ``us`` to the ``new`` backend
4-24            ``after``: what the hypothesis judges
==============  =================================================================

Arms, both a fleet of :data:`REPLICAS`:

- ``naive``: :class:`~chaos.scenarios._naive_routing.AppliedAtOnce`: each change is made
  current at once and every instance serves it within 0.25 s, until the run ends: ``eu`` and
  ``us`` fail, ``asia`` is fine (the incident's uneven outage);
- ``guarded``: the example's ``build_app``: every change through a ``ConfigRollout``
  (validation with the fleet connection budget, then one region at a time as a canary
  compared with the others, evaluated every 0.25 s). The storm configuration is rejected
  before any instance sees it; the routing change reaches ``eu`` only, its gate fails, and the
  fleet rolls back by itself.

Load (open loop, 120 requests a second): ``GET /route?user=U&region=R``, the regions in turn
(tag = region), users ``u0``...``u999``, spread round-robin over the replicas.

Hypothesis (the guarded arm keeps it over ``after``): at least 97% of requests answered, that
is failed requests at most 5% of the naive arm's (which fails two regions in three: 3.3%);
``us`` and ``asia`` answered at 99%, ``eu`` (the canary, until the rollback) at 90%; and no
instance ever served the storm configuration (gauge ``storm_config_served``, over
``proposal``). The report's notes give the time from the bad stage's start to the rollback.
Signature (the naive arm shows it): at least 60% of ``after``'s requests failed, and every
``asia`` request answered (the outage is regional, not global).

``--scale`` shortens every span (not the backend timeout or the evaluation interval); below
:data:`MIN_SCALE` the rollback's second would be a larger share of ``after`` than the
hypothesis allows.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from chaos.load import Load, Reply, RequestSpec
from chaos.scenario import (
    AddToxic,
    AiohttpServer,
    Arm,
    ArmContext,
    Gauge,
    Incident,
    OutcomeRatio,
    Proxy,
    RedisServer,
    Scenario,
    SuccessRatio,
    Window,
)
from chaos.scenarios._examples import example_file, load_example
from chaos.scenarios._naive_routing import AppliedAtOnce
from resilient.errors import ConfigRejectedError
from resilient.events import Event, EventBus
from resilient.rollout import ROLLOUT_ROLLED_BACK, RedisConfigStore

__all__ = ["EXAMPLE", "MIN_SCALE", "REGIONS", "REPLICAS", "SCENARIOS", "classify"]

EXAMPLE = example_file("routing-config-rollout")
"""The guarded arm's service (shipped in the wheel, see :mod:`chaos.scenarios._examples`)."""

REPLICAS = 3
"""Router processes in each arm (the example's ``REPLICAS``, checked)."""

REGIONS = ("eu", "us", "asia")
BACKENDS = ("eu-1", "us-1", "asia-1", "new")

MIN_SCALE = 0.5

_STORM_AT = 2.0
_TOXIC_AT = 3.0
_CHANGE_AT = 4.0
_DURATION = 24.0
_BASELINE = Window("baseline", 1.0, _CHANGE_AT)
_PROPOSAL = Window("proposal", _STORM_AT, _CHANGE_AT)
_AFTER = Window("after", _CHANGE_AT, _DURATION)

STORM_POOL = 500
"""The storm configuration's pool size per instance: 3 x 500 connections, the backend holds 200."""

STORM_GAUGE = "storm_config_served"
"""Instances serving the storm configuration (summed over the fleet)."""


def _config(example: Any, targets: Mapping[str, str], pool: Any = None) -> bytes:
    regions = {region: example.Region(targets=(target,)) for region, target in targets.items()}
    config = example.RoutingConfig(regions=regions, pool=pool or example.PoolSettings())
    data: bytes = example.encode(config)
    return data


def _storm(example: Any) -> bytes:
    storm = example.PoolSettings(max_size=STORM_POOL, connects_per_second=500)
    return _config(example, {r: f"{r}-1" for r in REGIONS}, storm)


def _change(example: Any) -> bytes:
    return _config(example, {"eu": "new", "us": "new", "asia": "asia-1"})


# -- the backends ----------------------------------------------------------------------------


def _backend(name: str) -> AiohttpServer:
    return AiohttpServer(name, functools.partial(_stub, name))


def _stub(name: str) -> web.Application:
    stub: web.Application = _example().stub_backend(name)
    return stub


# -- the load --------------------------------------------------------------------------------

_SPECS = [
    RequestSpec(path=f"/route?user=u{user}&region={region}", tag=region)
    for user, region in zip(range(999), itertools.cycle(REGIONS), strict=False)
]


def request(index: int, rng: Any) -> RequestSpec:
    return _SPECS[index % len(_SPECS)]


def classify(spec: RequestSpec, reply: Reply) -> str:
    """``ok`` (the router answered 200), ``failed`` otherwise."""
    return "ok" if reply.status == 200 else "failed"


_LOAD = Load(rate=120, duration=_DURATION, request=request, classify=classify, timeout=5.0)


# -- the arms (module-level: each replica imports its builder) -------------------------------


def _resolve(ctx: ArmContext) -> Any:
    urls = {name: ctx.url(name).rstrip("/") for name in BACKENDS}
    return urls.__getitem__


async def guarded(ctx: ArmContext) -> web.Application:
    """The example's router: every change through its ``ConfigRollout``."""
    example = _example()
    index, _ = ctx.replica
    events = EventBus(log_when_unobserved=False)
    app: web.Application = await example.build_app(
        ctx.url("redis", scheme="redis", path="0"), _resolve(ctx), first=index == 0, events=events
    )
    rollout = app[example.ROLLOUT]
    tasks: set[Any] = set()

    def rolled_back(event: Event) -> None:
        if event.source == "rollout" and event.name == ROLLOUT_ROLLED_BACK:
            attributes = event.attributes
            ctx.note(
                f"rolled back {attributes['seconds_in_stage']:.2f} s after stage "
                f"{attributes['stage']} began: {attributes['reason'][:160]}"
            )

    async def propose(data: bytes, what: str) -> None:
        if index != 0:
            return
        try:
            await example.start(rollout, data, what, tasks)
        except ConfigRejectedError as error:
            problems = "; ".join(f"{field}: {message}" for field, _, message in error.problems)
            ctx.note(f"{what}: rejected before any instance saw it ({problems})")

    if index == 0:
        events.subscribe(rolled_back)
    _gauge_storm(ctx, lambda: rollout.config_for("gauge", "asia").config)
    scale = ctx.scenario.duration / _DURATION
    ctx.at(
        _STORM_AT * scale,
        lambda: propose(_storm(example), "storm config"),
        "propose the storm config",
    )
    ctx.at(
        _CHANGE_AT * scale,
        lambda: propose(_change(example), "routing change"),
        "roll out: eu, us to new",
    )
    return app


async def naive(ctx: ArmContext) -> web.Application:
    """The same router, each change made current everywhere at once."""
    import redis.asyncio as aredis

    example = _example()
    index, _ = ctx.replica
    client = aredis.Redis.from_url(ctx.url("redis", scheme="redis", path="0"))
    store = RedisConfigStore(client, example.STORE_NAME)
    parse = example.PydanticSchema(example.RoutingConfig).parse
    source = AppliedAtOnce(store, parse, example.INITIAL)
    if index == 0:
        await source.apply(example.encode(example.INITIAL), "first version")
    app: web.Application = example.service_app(source, _resolve(ctx))
    watcher: set[Any] = set()

    async def watch(app: web.Application) -> None:
        import asyncio

        watcher.add(asyncio.create_task(source.watch()))

    async def stop(app: web.Application) -> None:
        for task in watcher:
            task.cancel()
        await client.aclose()

    app.on_startup.append(watch)
    app.on_cleanup.append(stop)
    _gauge_storm(ctx, lambda: source.config_for("gauge", "asia").config)

    async def apply(data: bytes, what: str) -> None:
        if index == 0:
            await source.apply(data, what)

    scale = ctx.scenario.duration / _DURATION
    ctx.at(
        _STORM_AT * scale, lambda: apply(_storm(example), "storm config"), "apply the storm config"
    )
    ctx.at(
        _CHANGE_AT * scale,
        lambda: apply(_change(example), "routing change"),
        "apply: eu, us to new",
    )
    return app


def _gauge_storm(ctx: ArmContext, config: Any) -> None:
    ctx.gauge(STORM_GAUGE, lambda: float(config().pool.max_size == STORM_POOL))


@functools.cache
def _example() -> Any:
    """Load the example service (once) and check it matches this scenario's numbers."""
    module = load_example("routing-config-rollout")
    expected: Mapping[str, tuple[object, object]] = {
        "REPLICAS": (module.REPLICAS, REPLICAS),
        "REGIONS": (module.REGIONS, REGIONS),
        "ROLLOUT_OPTIONS.evaluation_interval": (module.ROLLOUT_OPTIONS.evaluation_interval, 0.25),
    }
    for name, (found, wanted) in expected.items():
        if found != wanted:
            raise ValueError(
                f"{EXAMPLE}: {name} is {found!r}, but the scenario's SLOs assume {wanted!r}; "
                "update chaos/scenarios/routing_config_rollout.py with it"
            )
    return module


# -- hypothesis ------------------------------------------------------------------------------


def _hypothesis() -> list[SuccessRatio | Gauge]:
    return [
        SuccessRatio("answered", min=0.97, window=_AFTER.name),
        SuccessRatio("eu-answered", min=0.90, window=_AFTER.name, tag="eu"),
        SuccessRatio("us-answered", min=0.99, window=_AFTER.name, tag="us"),
        SuccessRatio("asia-answered", min=0.99, window=_AFTER.name, tag="asia"),
        Gauge("storm-config-never-served", STORM_GAUGE, max=0, window=_PROPOSAL.name),
    ]


def _signature() -> list[OutcomeRatio | SuccessRatio]:
    return [
        OutcomeRatio("regions-down", "failed", min=0.6, window=_AFTER.name),
        SuccessRatio("asia-unaffected", min=0.99, window=_AFTER.name, tag="asia"),
    ]


SCENARIOS = [
    Scenario(
        name="routing-config-rollout",
        incident=Incident(
            "2026-02-routing-config-regional-outage.txt",
            "a routing/backend configuration change broke some regions and not others",
        ),
        pattern="safe config rollout (ConfigRollout: validate, canary by region, gate, roll back)",
        description=(
            f"{REPLICAS} router replicas share their configuration through Redis; a change "
            "sends eu and us to a backend that black-holes. Naive: applied everywhere at once. "
            "Guarded: examples/routing-config-rollout/service.py."
        ),
        load=_LOAD,
        servers=(RedisServer(), *(_backend(name) for name in BACKENDS)),
        proxies=tuple(Proxy(name, upstream=name) for name in BACKENDS),
        faults=(AddToxic(_TOXIC_AT, "new", "timeout", "black-hole", {"timeout": 0}),),
        windows=(_BASELINE, _PROPOSAL, _AFTER),
        arms=(
            Arm("naive", "naive", naive, "changes applied everywhere at once", REPLICAS),
            Arm("guarded", "guarded", guarded, "the example router: ConfigRollout", REPLICAS),
        ),
        hypothesis=_hypothesis(),
        breaks=("answered", "us-answered", "storm-config-never-served"),
        signature=_signature(),
        ok_outcomes=("ok",),
        min_scale=MIN_SCALE,
        min_scale_reason=(
            "the rollback takes about a second whatever the scale; below 0.5 that second is "
            "more than the 3% of the 'after' window the hypothesis allows"
        ),
    )
]
