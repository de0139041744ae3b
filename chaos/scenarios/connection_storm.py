"""Scenario ``connection-storm``: a configuration rollout makes a fleet reconnect again and
again, and the handshakes eat a backend another tenant needs.

Incident (2026-06-02): "a configuration rollout that caused an internal service to repeatedly
establish connections to a shared backend dependency. This behavior consumed capacity within
shared infrastructure"; login and authentication, which shared it, failed. Here the service
under test is the profile service of ``examples/connection-storm/service.py``, run as a fleet
of :data:`REPLICAS` processes; the shared backend is a TCP server with one simulated core;
the other tenant is an ``auth`` service with its own, steady connections to it.

The backend (:func:`backend`): a new connection holds its core :data:`HANDSHAKE` seconds (a
TLS-like handshake) before it says ``HELLO``; a request holds it :data:`REQUEST_CPU` and then
waits :data:`REQUEST_IO` (work that does not need the core). The core is a FIFO lock, one per
backend instance, so its saturation is the same on any machine: what costs the core is
simulated with sleeps, not burnt, and the harness's own machine stays out of the measurement.
A handshake the client has given up on is still paid for, as a server pays for a connection
it accepted.

Topology: the backend; a proxy in front of it for the service (the faults act there); the
``auth`` service (:func:`auth_app`), which reaches the backend directly over :data:`AUTH_POOL`
connections it keeps.

Load (open loop, 160 requests/s in groups of 8: 5 to the service, 3 to ``auth``):
100 requests/s to the fleet (``GET /``, tag ``user``), spread round-robin over the replicas,
and 60 requests/s to ``auth`` (``GET /login``, tag ``auth``, ``RequestSpec.target``).

Timeline (default scale, seconds from load start):

==============  =================================================================
0-4             steady: every replica keeps its connections; ``baseline`` is 1-4
4               the rollout (a step in every replica): reconnect per request, and
                retry a failed request twice at once, on new connections
5-12            a latency toxic (200 ms) on the service's path to the backend: a
                connect no longer gets its ``HELLO`` within the service's 50 ms
6-12            ``storm``: what the hypothesis judges
12-16           the toxic is gone
==============  =================================================================

Arms, both a fleet of :data:`REPLICAS`:

- ``naive``: :class:`~chaos.scenarios._naive_connections.ReconnectingClient`: connections
  unbounded, connects unpaced, a failed request retried at once: after the rollout each user
  request costs the backend up to three handshakes, 300 a second, more than its core can do;
- ``guarded``: the example's ``build_app``: a ``BoundedPool`` (4 per replica) whose new
  connections pass the backend's ``ConnectGate`` (5 a second per replica, 2 at once, gRPC's
  backoff, a breaker): the rollout costs the backend at most what the gates allow.

Hypothesis (the guarded arm keeps it over ``storm``): the ``auth`` tenant answers at least
99% of its requests; its p99 service time stays within 2x of its own p99 in ``baseline``
(:class:`~chaos.scenario.LatencyGrowth`); connection attempts per second, summed over the
fleet, never exceed the gates' sum (:data:`GATES_BOUND`). The service's own users are not in
it: under a rollout this bad, failing their requests fast (503) is what a guard should do.
Signature (the naive arm shows it): connection attempts at least 3x the gates' sum in half of
``storm``'s samples.

``--scale`` shortens every span (not the toxic's latency, the service's timeouts or the
backend's costs); below :data:`MIN_SCALE` the baseline window holds too few ``auth`` requests
for a p99.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from chaos.load import (
    Load,
    Reply,
    RequestSpec,
)
from chaos.scenario import (
    AddToxic,
    AiohttpServer,
    Arm,
    ArmContext,
    Gauge,
    Incident,
    LatencyGrowth,
    Proxy,
    RemoveToxic,
    Scenario,
    SuccessRatio,
    TcpServer,
    Window,
)
from chaos.scenarios._examples import example_file, load_example
from chaos.scenarios._gauges import per_second
from chaos.scenarios._naive_connections import ReconnectingClient
from resilient.events import EventBus
from resilient.pool import GateOptions
from resilient.ratelimit import Rate

__all__ = [
    "AUTH_POOL",
    "EXAMPLE",
    "GATES_BOUND",
    "HANDSHAKE",
    "MIN_SCALE",
    "REPLICAS",
    "REQUEST_CPU",
    "REQUEST_IO",
    "SCENARIOS",
    "auth_app",
    "backend",
    "classify",
]

EXAMPLE = example_file("connection-storm")
"""The guarded arm's service (shipped in the wheel, see :mod:`chaos.scenarios._examples`)."""

REPLICAS = 4
"""Processes of the service under test, in each arm."""

HANDSHAKE = 0.004
"""Seconds of the backend's core a new connection costs: 250 a second saturate it."""

REQUEST_CPU = 0.0005
"""Seconds of the backend's core a request costs."""

REQUEST_IO = 0.020
"""Seconds a request then waits without the core: the ``auth`` p99 at rest is just above it,
so that its 2x bound leaves some 20 ms for the noise of a busy machine."""

AUTH_POOL = 4
"""Connections the ``auth`` tenant keeps to the backend."""

AUTH_TIMEOUT = 1.0
"""Seconds an ``auth`` request may wait for the backend before it fails (504)."""

TOXIC_LATENCY_MS = 200
"""The toxic's delay: 4x the service's 50 ms connect timeout."""

MIN_SCALE = 0.6

_ROLLOUT_AT = 4.0
_TOXIC_AT = 5.0
_TOXIC_END = 12.0
_DURATION = 16.0
_BASELINE = Window("baseline", 1.0, _ROLLOUT_AT)
GATE_OPTIONS = GateOptions(connect_rate=Rate(5, 1.0, burst=1), max_connecting=2)
"""The gates the hypothesis assumes (the example's ``GATE_OPTIONS``, checked when loaded)."""
_STORM = Window("storm", 6.0, _TOXIC_END)
_RECOVERED = Window("recovered", 13.0, _DURATION)

CONNECTS_GAUGE = "connects_per_s"
"""Connection attempts a second, summed over the fleet."""
OPEN_GAUGE = "open_connections"
"""Connections open, summed over the fleet."""


def _gates_bound(options: GateOptions, interval: float) -> float:
    """The most connects a second the fleet's gates let through, as a gauge samples it: in any
    ``interval`` a gate admits at most ``interval * limit / period + burst + 1`` (GCRA)."""
    rate = options.connect_rate
    per_interval = interval * rate.limit / rate.period + rate.burst + 1
    return REPLICAS * per_interval / interval


# -- the backend and the other tenant ------------------------------------------------------------

_cores: dict[int, asyncio.Lock] = {}
"""The core of each backend instance (by its port: every arm starts a fresh one)."""


async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The shared backend: a handshake, ``HELLO``, then one ``OK`` line per request line."""
    core = _cores.setdefault(writer.get_extra_info("sockname")[1], asyncio.Lock())
    with contextlib.suppress(OSError):
        async with core:
            await asyncio.sleep(HANDSHAKE)
        writer.write(b"HELLO\n")
        while line := await reader.readline():
            async with core:
                await asyncio.sleep(REQUEST_CPU)
            await asyncio.sleep(REQUEST_IO)
            writer.write(b"OK " + line.split(b" ", 1)[-1])
            await writer.drain()
    writer.close()


def auth_app(servers: Mapping[str, tuple[str, int]]) -> web.Application:
    """The other tenant: ``GET /login`` asks the backend on one of :data:`AUTH_POOL` kept
    connections (opened at start, reopened when one breaks); 504 past :data:`AUTH_TIMEOUT`."""
    host, port = servers["backend"]
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = asyncio.Queue()

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(host, port)
        if await reader.readline() != b"HELLO\n":
            raise ConnectionResetError("no HELLO")
        return reader, writer

    async def login(request: web.Request) -> web.Response:
        taken = False
        stream = None
        try:
            async with asyncio.timeout(AUTH_TIMEOUT):
                stream = await idle.get()
                taken = True
                if stream is None:
                    stream = await connect()
                reader, writer = stream
                writer.write(b"GET session\n")
                line = await reader.readline()
            if not line:
                raise ConnectionResetError("closed")
        except (OSError, TimeoutError):
            if taken:
                if stream is not None:
                    stream[1].close()
                idle.put_nowait(None)  # its place: reconnected on next use
            return web.Response(status=504, text="backend did not answer")
        idle.put_nowait(stream)
        return web.Response(text="logged in", headers={"X-Tenant": "auth"})

    async def open_pool(app: web.Application) -> None:
        for _ in range(AUTH_POOL):
            idle.put_nowait(await connect())

    async def close_pool(app: web.Application) -> None:
        while not idle.empty():
            stream = idle.get_nowait()
            if stream is not None:
                stream[1].close()

    app = web.Application()
    app.router.add_get("/login", login)
    app.on_startup.append(open_pool)
    app.on_cleanup.append(close_pool)
    return app


# -- the load ----------------------------------------------------------------------------------

_USER = RequestSpec(tag="user")
_AUTH = RequestSpec(path="/login", tag="auth", target="auth")
_GROUP = (_USER, _AUTH, _USER, _USER, _AUTH, _USER, _AUTH, _USER)


def request(index: int, rng: random.Random) -> RequestSpec:
    return _GROUP[index % len(_GROUP)]


def classify(spec: RequestSpec, reply: Reply) -> str:
    """``ok`` / ``unavailable`` for the service's users, ``auth_ok`` / ``auth_failed`` for the
    other tenant."""
    if spec.tag == "auth":
        return "auth_ok" if reply.status == 200 else "auth_failed"
    return "ok" if reply.status == 200 else "unavailable"


_LOAD = Load(rate=160, duration=_DURATION, request=request, classify=classify, timeout=5.0)


# -- the arms (module-level: each replica imports its builder) ---------------------------------


async def guarded(ctx: ArmContext) -> web.Application:
    """The example's service, as it is: a bounded pool and the backend's gate."""
    example = _example()
    host, port = ctx.address("backend")
    app: web.Application = example.build_app(host, port, events=_quiet())
    _instrument(ctx, app[example.CLIENT], example)
    return app


async def naive(ctx: ArmContext) -> web.Application:
    """The same service over the incident's client: unbounded, unpaced, retrying at once."""
    example = _example()
    host, port = ctx.address("backend")
    client = ReconnectingClient(example.Connections(host, port), example.ask_on, example.Config())
    app: web.Application = example.service_app(client)
    _instrument(ctx, client, example)
    return app


def _instrument(ctx: ArmContext, client: Any, example: Any) -> None:
    ctx.gauge(CONNECTS_GAUGE, per_second(lambda: client.connects))
    ctx.gauge(OPEN_GAUGE, lambda: float(client.opened - client.closed))
    ctx.at(
        _ROLLOUT_AT * ctx.scenario.duration / _DURATION,  # the timeline is scaled; so is the step
        lambda: client.apply(example.STORM_CONFIG),
        "config rollout: reconnect per request, retry failed requests twice at once",
    )


def _quiet() -> EventBus:
    """The arms' events are not logged: log lines would interleave with the progress display."""
    return EventBus(log_when_unobserved=False)


@functools.cache
def _example() -> Any:
    """Load the example service (once) and check it matches this scenario's numbers."""
    module = load_example("connection-storm")
    expected: Mapping[str, tuple[object, object]] = {
        "GATE_OPTIONS": (module.GATE_OPTIONS, GATE_OPTIONS),
        "CONNECT_TIMEOUT": (module.CONNECT_TIMEOUT, 0.05),
        "STORM_CONFIG.retries": (module.STORM_CONFIG.retries, 2),
    }
    for name, (found, wanted) in expected.items():
        if found != wanted:
            raise ValueError(
                f"{EXAMPLE}: {name} is {found!r}, but the scenario's SLOs assume {wanted!r}; "
                "update chaos/scenarios/connection_storm.py with it"
            )
    return module


# -- hypothesis --------------------------------------------------------------------------------

_INTERVAL = 0.25
"""Seconds between gauge samples: a rate over 0.1 s would count a gate's burst ten times."""

GATES_BOUND = _gates_bound(GATE_OPTIONS, _INTERVAL)
"""Connects a second the fleet's gates allow at most, as sampled: 4 x (1.25 + 2) / 0.25."""

STORM_FACTOR = 3.0
"""The signature: connection attempts at least this many times the gates' sum."""


def _hypothesis() -> list[SuccessRatio | LatencyGrowth | Gauge]:
    return [
        SuccessRatio(
            "auth-answered", min=0.99, success=("auth_ok",), tag="auth", window=_STORM.name
        ),
        LatencyGrowth(
            "auth-p99-within-2x", max=2.0, window=_STORM.name, baseline=_BASELINE.name, tag="auth"
        ),
        Gauge("connects-within-gates", CONNECTS_GAUGE, max=GATES_BOUND, window=_STORM.name),
    ]


def _signature() -> list[Gauge]:
    return [
        Gauge(
            "connect-storm",
            CONNECTS_GAUGE,
            min=STORM_FACTOR * GATES_BOUND,
            q=50,
            window=_STORM.name,
        )
    ]


SCENARIOS = [
    Scenario(
        name="connection-storm",
        incident=Incident(
            "2026-06-02-config-rollout-connection-storm-and-429s.txt",
            "a config rollout made a service reconnect again and again; the handshakes ate a "
            "backend that authentication shared",
        ),
        pattern="bounded pool with a connect gate (BoundedPool, ConnectGate)",
        description=(
            f"{REPLICAS} replicas of a profile service and an auth tenant share a backend whose "
            "core pays 4 ms per handshake; a rollout turns on reconnect-per-request with "
            "immediate retries, and a latency toxic makes connects time out. Naive: plain "
            "connections. Guarded: examples/connection-storm/service.py."
        ),
        load=_LOAD,
        servers=(TcpServer("backend", backend), AiohttpServer("auth", auth_app)),
        proxies=(Proxy("backend", upstream="backend"),),
        faults=(
            AddToxic(_TOXIC_AT, "backend", "latency", "slow", {"latency": TOXIC_LATENCY_MS}),
            RemoveToxic(_TOXIC_END, "backend", "slow"),
        ),
        windows=(_BASELINE, Window("rollout", _ROLLOUT_AT, _STORM.start), _STORM, _RECOVERED),
        arms=(
            Arm("naive", "naive", naive, "plain connections, retried at once", REPLICAS),
            Arm("guarded", "guarded", guarded, "the example service: pool and gate", REPLICAS),
        ),
        hypothesis=_hypothesis(),
        breaks=("auth-p99-within-2x", "connects-within-gates"),
        signature=_signature(),
        gauge_interval=_INTERVAL,
        ok_outcomes=("ok", "auth_ok"),
        min_scale=MIN_SCALE,
        min_scale_reason=(
            "the baseline window must hold the 100 auth requests a p99 needs (60 a second "
            "over 3 s, scaled)"
        ),
    )
]
