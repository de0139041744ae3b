"""Scenario ``queued-actions-burst``: capacity moves queued behind a breaker all run at once.

Incident (2026-03-04): a circuit breaker paused scheduling operations; the capacity manager
kept queueing adjustments computed from an outdated state; when the breaker was released,
the queued changes ran simultaneously and took many inference engines out of service at
once: capacity fell, error rates rose for about 30 minutes. Here the service is the front of
``examples/queued-actions-burst/service.py`` over 8 engines, each behind its own proxy.

That file is the one readable, runnable copy of the service; the wheel ships it as
``chaos/_examples/queued_actions_burst/service.py`` (see :mod:`chaos.scenarios._examples`).

Topology: 8 aiohttp "inference engines" (``engine_app`` of the example: 3 requests at a
time, 50 ms each, 60 requests/s; a request that finds no free slot within 0.5 s gets 503), a
placement service (an aiohttp app answering 200), and a proxy in front of each of the nine.
The front routes every request round-robin over the engines in service, through their
proxies. A move takes its engine out of service, waits for its requests in flight, disables
its proxy (the engine is away: :meth:`~chaos.scenario.ArmContext.disable_proxy`), reloads it
for :data:`REASSIGN_TIME` seconds, enables the proxy and puts it back. The scheduler's
heartbeat asks placement every 0.1 s through a breaker (3 failures open it, a probe every
0.5 s); the capacity manager computes moves every 0.1 s from the fleet as the scheduler last
saw it (frozen while the breaker is open) and the current plan.

Load (open loop, constant arrivals): 200 requests/s, every one to the front. 8 engines serve
480/s, the 6 a 25 % budget leaves 360/s (56 % busy), 2 engines 120/s: with 6 engines out, 40 %
of the requests cannot be served, and once the engines' slot waits are full (0.5 s) they get
503.

Timeline (default scale, seconds from load start):

=========  ===============================================================================
0 - 2      steady: 8 engines in service, every one on generation 1, as the plan asks
2.0        placement's proxy disabled: the heartbeats fail, the breaker opens (~2.3):
           the scheduler is paused, its view of the fleet frozen at that state version
2.5        (arm step) a new plan: engines 0-5 to generation 2 (state version + 1); the
           manager queues 6 moves, computed from the frozen view
3.5        (arm step) the plan revised: engines 4 and 5 stay on generation 1 (version + 1);
           the manager only adds moves: the two already queued stay queued
4.5        placement's proxy enabled: the breaker's next probe closes it (within 0.5 s)
4.5 - 11   the release
=========  ===============================================================================

Arms (the same front, manager and moves; only the scheduler differs):

- ``naive``: :class:`~chaos.scenarios._naive_scheduler.FlushAtOnce`, the incident's: the
  queued moves (newest per engine) all start on the first heartbeat after the breaker
  closed: 6 engines leave service together, 2 carry the load for 2 s; engines 4 and 5 move
  although the plan no longer asks it (and are moved back afterwards);
- ``guarded``: ``build_app`` of the example: a ``ReleaseQueue`` that follows the breaker,
  budget 25 % of the capacity read at commit time (2 engines), slow start, and revalidation:
  a move computed from an older state version is replanned from the current plan, one the
  plan no longer asks for dropped with the reason (each drop is in the report's notes).

Hypothesis (the guarded arm keeps it): engines in service never below 6 of 8 (75 %), at least
99.5 % of the requests answered 200, and no move started that the plan did not ask for at its
start (``unneeded_moves``). The naive arm must break the first two, and show the incident's
signature: at least :data:`COLLAPSED_SHARE` of the release window's gauge samples with at
most 3 engines in service, at least one move started that the plan no longer asked for, and
at least 1 % of the release window's requests failed.

Trust. The verdicts rest on the gauges (sampled every 0.1 s: a gap of more than 2.5 intervals
makes a gauge that held inconclusive) and on the requests' outcomes. A stall of this process
(the engines, the front and the proxies' peers all run on its loop) bunches requests: with
6 engines 56 % busy and 0.5 s of slot wait, a stall of 0.25 s is absorbed (its 50 requests
spread over 18 slots drain in a tenth of a second). The premise ``loop-not-stalled`` says the
loop was never held up longer than that (``loop_stall``, the longest delay of a 10 ms
ticker per gauge interval); where it did not hold, a failed ``success`` (in either arm) is
inconclusive and the arm is run again.

``--scale`` shortens the timeline and :data:`REASSIGN_TIME` with it (not the engines' speed,
the slot wait, the heartbeat or the breaker's probe interval). Below :data:`MIN_SCALE` the
naive arm's 2 engines carry the load for less than the 0.5 s slot wait plus the time to fill
it, and the incident no longer shows as failed requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
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
    AiohttpServer,
    Arm,
    ArmContext,
    DisableProxy,
    EnableProxy,
    Gauge,
    Incident,
    OutcomeRatio,
    Premise,
    Proxy,
    Scenario,
    SuccessRatio,
    Window,
)
from chaos.scenarios._examples import example_file, load_example
from chaos.scenarios._gauges import LoopStall
from chaos.scenarios._naive_scheduler import FlushAtOnce
from resilient.breaker import CircuitBreaker
from resilient.events import Event, EventBus
from resilient.release import RELEASE_DROPPED, RELEASE_REPLANNED, ReleaseOptions

__all__ = [
    "BUDGET_SHARE",
    "COLLAPSED_SHARE",
    "ENGINES",
    "EXAMPLE",
    "MIN_SCALE",
    "MIN_SUCCESS",
    "MOVED",
    "RATE",
    "REASSIGN_TIME",
    "SCENARIOS",
    "STAYING",
    "classify",
]

EXAMPLE = example_file("queued-actions-burst")
"""The example service (``examples/queued-actions-burst/service.py``, or the wheel's copy);
the guarded arm is its ``build_app``."""

ENGINES = 8
"""Inference engines in the fleet, each behind its own proxy."""

RATE = 200
"""Requests per second to the front."""

BUDGET_SHARE = 0.25
"""The guarded queue's disruption budget (the example's ``RELEASE_OPTIONS``; checked)."""

MIN_IN_SERVICE = ENGINES - int(BUDGET_SHARE * ENGINES)
"""Engines that must stay in service: 6 of 8, 75 %."""

MIN_SUCCESS = 0.995
"""Share of the requests that must be answered 200."""

COLLAPSED_SHARE = 0.15
"""The naive arm's signature: at least this share of the release window's gauge samples with
at most 3 engines in service (its 6 moves hold 6 engines out for 2 s of the window's 6.5)."""

REASSIGN_TIME = 2.0
"""Seconds a move keeps its engine out of service, at scale 1 (scaled with the timeline)."""

MOVED = tuple(f"engine-{i}" for i in range(6))
"""The engines the new plan moves to generation 2."""

STAYING = ("engine-4", "engine-5")
"""The engines the revised plan keeps on generation 1: their queued moves are stale."""

MIN_SCALE = 0.6
"""The smallest ``--scale`` that still replays the incident (see the module docstring)."""

_PAUSE_AT = 2.0
_PLAN_AT = 2.5
_REVISE_AT = 3.5
_RESUME_AT = 4.5
_DURATION = 11.0

_ENGINE_NAMES = tuple(f"engine-{i}" for i in range(ENGINES))
_RELEASE = Window("release", _RESUME_AT, _DURATION)
_AFTER_BURST = Window("after-burst", 7.0, _DURATION)
"""From after the naive arm's burst (its moves start by about 5 s, a count never goes down) to
the end: long enough (4 s) that the timeline may slip 0.2 s before the naive arm's verdict is
untrusted; a 1 s window allowed only 50 ms, which a busy machine's load generator missed once
in 10 runs, with nothing at stake."""

_BAD_OUTCOMES = (
    "overloaded",
    "no_engine",
    "error",
    OUTCOME_TIMEOUT,
    OUTCOME_CONN_ERROR,
    OUTCOME_OVERFLOW,
    OUTCOME_CLASSIFY_ERROR,
)

IN_SERVICE_GAUGE = "engines_in_service"
UNNEEDED_GAUGE = "unneeded_moves"
STALL_GAUGE = "loop_stall_s"

LOOP_STALL_BOUND = 0.25
"""Seconds the loop may be held up at once before a failed ``success`` says nothing."""


# -- the load --------------------------------------------------------------------------------


def classify(spec: RequestSpec, reply: Reply) -> str:
    """``ok`` (200), ``overloaded`` (503 from an engine with no free slot), ``no_engine``
    (503 from the front: none in service), ``error`` (anything else)."""
    if reply.status == 200:
        return "ok"
    if reply.status == 503:
        return "no_engine" if reply.body.startswith(b"no engine") else "overloaded"
    return "error"


def _request(index: int, rng: random.Random) -> RequestSpec:
    return _INFER


_INFER = RequestSpec(path="/", tag="infer")

_LOAD = Load(rate=RATE, duration=_DURATION, request=_request, classify=classify, timeout=5.0)


# -- the topology ----------------------------------------------------------------------------


def _engine(name: str) -> web.Application:
    app: web.Application = _example().module.engine_app(name)
    return app


def _placement() -> web.Application:
    app = web.Application()

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="placement\n")

    app.router.add_get("/", health)
    return app


# -- the arms --------------------------------------------------------------------------------


async def guarded(ctx: ArmContext) -> web.Application:
    """The example's service, as it is: moves through a ReleaseQueue."""
    example = _example()
    events = EventBus(log_when_unobserved=False)
    events.subscribe(functools.partial(_note_release_event, ctx))
    app: web.Application = example.module.build_app(
        _engine_urls(ctx),
        ctx.url("placement"),
        reassign_time=_reassign_time(ctx),
        leave=ctx.disable_proxy,
        rejoin=ctx.enable_proxy,
        events=events,
    )
    _instrument(ctx, app)

    async def summary(app: web.Application) -> None:
        scheduler = app.get(example.module.SCHEDULER)
        if scheduler is not None:
            ctx.note(f"release queue at the end: {scheduler.queue.stats}")

    app.on_shutdown.append(summary)
    return app


async def naive(ctx: ArmContext) -> web.Application:
    """The same service, its scheduler starting every queued move at once."""
    module = _example().module
    reassign_time = _reassign_time(ctx)
    placement = ctx.url("placement")

    def scheduler(fleet: Any, session: aiohttp.ClientSession) -> FlushAtOnce:
        breaker = CircuitBreaker("scheduler", module.BREAKER_OPTIONS, events=_quiet())
        heartbeat = module.Heartbeat(fleet, placement, session, breaker)
        run = functools.partial(
            module.move, fleet, reassign_time=reassign_time, leave=ctx.disable_proxy,
            rejoin=ctx.enable_proxy,
        )  # fmt: skip

        def started(engine: str, generation: int, based_on: int, together: int) -> None:
            stale = (
                f"stale: computed from state version {based_on}, state is {fleet.version}"
                if based_on < fleet.version
                else f"computed from state version {based_on}, the current one"
            )
            ctx.note(
                f"started {engine}'s move to generation {generation}, {together} moves at "
                f"once ({stale})"
            )

        return FlushAtOnce(fleet, heartbeat.ping, breaker, run=_positional(run), on_start=started)

    app: web.Application = module.service_app(_engine_urls(ctx), scheduler)
    _instrument(ctx, app)
    return app


def _positional(run: Callable[..., Any]) -> Callable[[str, int], Coroutine[Any, Any, str]]:
    async def moved(engine: str, generation: int) -> str:
        result: str = await run(engine, generation)
        return result

    return moved


def _engine_urls(ctx: ArmContext) -> dict[str, str]:
    return {name: ctx.url(name) for name in _ENGINE_NAMES}


def _reassign_time(ctx: ArmContext) -> float:
    return REASSIGN_TIME * ctx.scenario.duration / _DURATION


def _instrument(ctx: ArmContext, app: web.Application) -> None:
    """The gauges, the plan's steps on the timeline, and the loop-stall ticker."""
    fleet = app[_example().module.FLEET]
    scale = ctx.scenario.duration / _DURATION
    ctx.gauge(IN_SERVICE_GAUGE, lambda: float(len(fleet.in_service)))
    ctx.gauge(UNNEEDED_GAUGE, lambda: float(fleet.unneeded_moves))
    stall = LoopStall()
    ctx.gauge(STALL_GAUGE, stall.read)
    ctx.at(
        _PLAN_AT * scale,
        functools.partial(fleet.set_plan, dict.fromkeys(MOVED, 2)),
        f"new plan: {', '.join(MOVED)} to generation 2",
    )
    ctx.at(
        _REVISE_AT * scale,
        functools.partial(fleet.set_plan, dict.fromkeys(STAYING, 1)),
        f"plan revised: {', '.join(STAYING)} stay on generation 1",
    )

    async def ticking(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(stall.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(ticking)


def _note_release_event(ctx: ArmContext, event: Event) -> None:
    if event.name == RELEASE_DROPPED:
        ctx.note(f"dropped {event.attributes['key']}: {event.attributes['reason']}")
    elif event.name == RELEASE_REPLANNED:
        attrs = event.attributes
        ctx.note(
            f"replanned {attrs['key']}: computed from state version {attrs['based_on']}, "
            f"replanned on version {attrs['version']}"
        )


def _quiet() -> EventBus:
    """The arms' events are not logged: log lines would interleave with the progress display."""
    return EventBus(log_when_unobserved=False)


@dataclass(frozen=True)
class _Example:
    module: Any


@functools.cache
def _example() -> _Example:
    """Load the example service (once) and check it matches this scenario's numbers."""
    module = load_example("queued-actions-burst")
    options: ReleaseOptions = module.RELEASE_OPTIONS
    expected: Mapping[str, tuple[object, object]] = {
        "RELEASE_OPTIONS.budget_share": (options.budget_share, BUDGET_SHARE),
        "ENGINE_SLOTS / SERVICE_TIME": (module.ENGINE_SLOTS / module.SERVICE_TIME, 60.0),
        "SLOT_WAIT": (module.SLOT_WAIT, 0.5),
    }
    for name, (found, wanted) in expected.items():
        if found != wanted:
            raise ValueError(
                f"{EXAMPLE}: {name} is {found!r}, but the scenario's load and SLOs assume "
                f"{wanted!r}; update chaos/scenarios/queued_actions_burst.py with it"
            )
    return _Example(module)


# -- timeline, windows, hypothesis -----------------------------------------------------------


def _hypothesis() -> list[Gauge | SuccessRatio]:
    return [
        Gauge("capacity-in-service", IN_SERVICE_GAUGE, min=MIN_IN_SERVICE),
        SuccessRatio("success", min=MIN_SUCCESS, success="ok"),
        Gauge("no-unneeded-move", UNNEEDED_GAUGE, max=0),
    ]


def _signature() -> list[Gauge | OutcomeRatio]:
    return [
        Gauge(
            "capacity-collapsed",
            IN_SERVICE_GAUGE,
            max=3,
            q=100 * COLLAPSED_SHARE,
            window=_RELEASE.name,
        ),
        Gauge("acted-on-stale-state", UNNEEDED_GAUGE, min=1, window=_AFTER_BURST.name),
        OutcomeRatio("failed-in-release", _BAD_OUTCOMES, min=0.01, window=_RELEASE.name),
    ]


def _premises() -> list[Premise]:
    stall = Gauge("loop-not-stalled", STALL_GAUGE, max=LOOP_STALL_BOUND, unit="s")
    return [Premise(stall, covers=("success", "failed-in-release"))]


SCENARIOS = [
    Scenario(
        name="queued-actions-burst",
        incident=Incident(
            "2026-03-04-queued-capacity-actions-released-at-once.txt",
            "capacity moves queued behind a breaker ran at once and took engines out together",
        ),
        pattern="batch-throttled release (ReleaseQueue: revalidation, 25% budget, slow start)",
        description=(
            f"{RATE} req/s to a front over {ENGINES} engines (60 req/s each), each behind a "
            "proxy; the scheduler's placement service goes away for 2.5 s, its breaker "
            "pauses the moves; a plan moves 6 engines, then is revised (2 stay). Naive: the "
            "queued moves start at once. Guarded: examples/queued-actions-burst/service.py."
        ),
        load=_LOAD,
        servers=(
            *(AiohttpServer(name, functools.partial(_engine, name)) for name in _ENGINE_NAMES),
            AiohttpServer("placement", _placement),
        ),
        proxies=(
            *(Proxy(name, upstream=name) for name in _ENGINE_NAMES),
            Proxy("placement", upstream="placement"),
        ),
        faults=(DisableProxy(_PAUSE_AT, "placement"), EnableProxy(_RESUME_AT, "placement")),
        windows=(
            Window("steady", 0.0, _PAUSE_AT),
            Window("paused", _PAUSE_AT, _RESUME_AT),
            _RELEASE,
            _AFTER_BURST,
        ),
        arms=(
            Arm("naive", "naive", naive, "every queued move starts at once"),
            Arm("guarded", "guarded", guarded, "the example service: ReleaseQueue"),
        ),
        hypothesis=_hypothesis(),
        breaks=("capacity-in-service", "success"),
        signature=_signature(),
        premises=_premises(),
        ok_outcomes=("ok",),
        min_scale=MIN_SCALE,
        min_scale_reason=(
            "the naive arm's 2 engines must carry the load longer than the engines' 0.5 s "
            "slot wait for the incident to show as failed requests"
        ),
    )
]
