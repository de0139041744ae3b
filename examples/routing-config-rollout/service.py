"""A router whose routing configuration reaches its fleet through a safe rollout.

Each request names a user and a region; the router sends it to the backend its configuration
gives that region. In February 2026 a routing/backend configuration change broke some regions
and not others: applied everywhere at once, a configuration that sends two regions to a
backend that does not answer fails every request of those regions until someone reverts it.

Here the configuration is a pydantic model, kept as versions in Redis
(:class:`~resilient.rollout.RedisConfigStore`) and changed only through a
:class:`~resilient.rollout.ConfigRollout`: a candidate is validated first (fields, and the fleet
connection budget of its pool settings: the 2026-06-02 storm's configuration is refused before
any instance sees it); then one region at a time gets it as a canary, compared with the other
regions at every evaluation (Fisher's exact test on the success ratio); a canary that does
worse is rolled back by itself, on every instance of the fleet.

Run it (a stub backend per region and a ``spare-1`` that answers 503, Redis on a free loopback
port, the router on port 8080)::

    python examples/routing-config-rollout/service.py
    curl 'http://127.0.0.1:8080/route?user=u1&region=eu'        # "ok from eu-1"
    curl -X POST --data-binary @new-routing.json http://127.0.0.1:8080/config
    curl http://127.0.0.1:8080/rollout                           # state, stage, last verdicts

The ``routing-config-rollout`` chaos scenario runs this file's :func:`build_app` in each replica
of its guarded arm.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import pydantic
import redis.asyncio as aredis
from aiohttp import ClientSession, ClientTimeout, web

from resilient.errors import ConfigConflictError, ConfigRejectedError, RolloutStateError
from resilient.events import DEFAULT_EVENTS, EventBus
from resilient.pool import GateOptions, PoolOptions, fleet_budget
from resilient.ratelimit import Rate
from resilient.rollout import (
    ConfigRollout,
    Problem,
    PydanticSchema,
    RedisConfigStore,
    RolloutOptions,
    SuccessRatioGate,
    by_cohorts,
    fleet_connection_budget,
)


class Region(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")
    targets: tuple[str, ...] = pydantic.Field(min_length=1)


class PoolSettings(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")
    max_size: int = pydantic.Field(default=10, ge=1)
    connects_per_second: int = pydantic.Field(default=10, ge=1)


class RoutingConfig(pydantic.BaseModel):
    """The router's runtime configuration: each region's backends, and its pool settings."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")
    regions: dict[str, Region] = pydantic.Field(min_length=1)
    pool: PoolSettings = PoolSettings()


REPLICAS = 3
"""Instances of the router (the fleet budget adds up all of them)."""

BACKEND_CONNECTIONS = 200
BACKEND_ACCEPTS_PER_SECOND = 100.0
"""What the shared backend takes: connections held, new connections a second."""


def pool_budget(config: RoutingConfig) -> Any:
    """The fleet's worst case under ``config``'s pool settings (the pool issue's check)."""
    return fleet_budget(
        replicas=REPLICAS,
        backend_connections=BACKEND_CONNECTIONS,
        backend_accepts_per_second=BACKEND_ACCEPTS_PER_SECOND,
        pool=PoolOptions(max_size=config.pool.max_size),
        gate=GateOptions(connect_rate=Rate(config.pool.connects_per_second, 1.0)),
    )


BACKENDS = ("eu-1", "us-1", "asia-1", "new", "spare-1")
"""Every backend the router knows by name (the scenario's, and the stubs of :func:`main`)."""


def every_region_keeps_a_known_target(config: RoutingConfig) -> list[Problem]:
    """A region whose targets are all unknown would fail every request: rejected."""
    return [
        Problem(f"regions.{name}.targets", "known_target", f"no known backend in {region.targets}")
        for name, region in config.regions.items()
        if not set(region.targets) & set(BACKENDS)
    ]


VALIDATORS = (
    fleet_connection_budget(pool_budget, field="pool"),
    every_region_keeps_a_known_target,
)

REGIONS = ("eu", "us", "asia")

INITIAL = RoutingConfig(regions={r: Region(targets=(f"{r}-1",)) for r in REGIONS})
"""Every region on its own backend."""

ROLLOUT_OPTIONS = RolloutOptions(
    stages=by_cohorts(("eu",), ("us",), bake=5.0),
    gates=(SuccessRatioGate(tolerance=0.02, min_samples=10),),
    evaluation_interval=0.25,
    sync_interval=0.25,
)
"""One region at a time (eu, then us; asia last), each for 5 s at least, judged every 0.25 s
on 10 requests a side at least; the first violation rolls back."""

BACKEND_TIMEOUT = 0.15
"""Seconds a request to a backend may take (a healthy one answers in about 1 ms)."""

STORE_NAME = "routing"


def encode(config: RoutingConfig) -> bytes:
    return config.model_dump_json().encode()


class Routing(Protocol):
    """Where a request's configuration comes from, and where its outcome goes."""

    def config_for(self, user: str, region: str) -> Any: ...

    def record(self, served: Any, *, ok: bool, latency: float) -> bool: ...


class RolloutRouting:
    """The guarded source: the rollout's answer for each request."""

    def __init__(self, rollout: ConfigRollout[RoutingConfig]) -> None:
        self.rollout = rollout

    def config_for(self, user: str, region: str) -> Any:
        return self.rollout.config_for(user, region)

    def record(self, served: Any, *, ok: bool, latency: float) -> bool:
        return self.rollout.record(served, ok=ok, latency=latency)


def service_app(routing: Routing, resolve: Callable[[str], str]) -> web.Application:
    """The router: ``GET /route?user=U&region=R`` asks the region's first backend (by its name,
    ``resolve`` gives its base URL): 200 with its answer, 502 when it fails, 504 past
    :data:`BACKEND_TIMEOUT`, 400 for an unknown region."""
    session_key = web.AppKey("session", ClientSession)

    async def route(request: web.Request) -> web.Response:
        user = request.query.get("user", "")
        region = request.query.get("region", "")
        served = routing.config_for(user, region)
        target = served.config.regions.get(region)
        if target is None:
            return web.Response(status=400, text=f"unknown region {region[:40]!r}")
        started = time.monotonic()
        try:
            url = resolve(target.targets[0]) + "/work"
            async with request.app[session_key].get(
                url, timeout=ClientTimeout(total=BACKEND_TIMEOUT)
            ) as reply:
                text = await reply.text()
                status = 200 if reply.status == 200 else 502
        except KeyError:
            status, text = 502, f"no backend named {target.targets[0][:40]!r}"
        except TimeoutError:
            status, text = 504, "backend timeout"
        except OSError as error:
            status, text = 502, f"backend failed: {type(error).__name__}"
        routing.record(served, ok=status == 200, latency=time.monotonic() - started)
        return web.Response(status=status, text=text)

    async def open_session(app: web.Application) -> None:
        app[session_key] = ClientSession()

    async def close_session(app: web.Application) -> None:
        await app[session_key].close()

    app = web.Application()
    app.router.add_get("/route", route)
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    return app


ROLLOUT = web.AppKey("rollout", ConfigRollout)


async def open_rollout(
    redis_url: str, *, first: bool, events: EventBus = DEFAULT_EVENTS
) -> tuple[ConfigRollout[RoutingConfig], aredis.Redis]:
    """The instance's rollout on the fleet's Redis store, opened (``first``: the instance that
    writes :data:`INITIAL` into an empty store; the others wait up to 5 s for it)."""
    client = aredis.Redis.from_url(redis_url)
    rollout: ConfigRollout[RoutingConfig] = ConfigRollout(
        RedisConfigStore(client, STORE_NAME),
        ROLLOUT_OPTIONS,
        schema=PydanticSchema(RoutingConfig),
        validators=VALIDATORS,
        name=STORE_NAME,
        events=events,
    )
    if first:
        with contextlib.suppress(ConfigConflictError):
            await rollout.bootstrap(encode(INITIAL))
    for _ in range(100):
        with contextlib.suppress(RolloutStateError):
            await rollout.open()
            return rollout, client
        await asyncio.sleep(0.05)
    await rollout.open()
    return rollout, client


async def build_app(
    redis_url: str,
    resolve: Callable[[str], str],
    *,
    first: bool = True,
    events: EventBus = DEFAULT_EVENTS,
) -> web.Application:
    """The guarded router: every request through the rollout; ``POST /config`` starts one
    (422 with the problems for a rejected configuration, 409 while another runs);
    ``GET /rollout`` says where it stands."""
    rollout, client = await open_rollout(redis_url, first=first, events=events)
    app = service_app(RolloutRouting(rollout), resolve)
    app[ROLLOUT] = rollout
    tasks: set[asyncio.Task[Any]] = set()

    async def change(request: web.Request) -> web.Response:
        try:
            version = await start(rollout, await request.read(), "POST /config", tasks)
        except ConfigRejectedError as error:
            return web.json_response({"rejected": error.problems}, status=422)
        except RolloutStateError as error:
            return web.json_response({"refused": str(error)}, status=409)
        return web.json_response({"version": version, "state": "running"}, status=202)

    async def status(request: web.Request) -> web.Response:
        now = rollout.status
        return web.json_response(
            {
                "state": now.state.value,
                "baseline": now.baseline,
                "candidate": now.candidate,
                "stage": now.stage,
                "verdicts": [(r.gate, r.verdict.value, r.detail) for r in now.last_results],
                "history": list(now.history)[-10:],
            }
        )

    async def follow(app: web.Application) -> None:
        tasks.add(asyncio.create_task(rollout.follow()))

    async def stop(app: web.Application) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()

    app.router.add_post("/config", change)
    app.router.add_get("/rollout", status)
    app.on_startup.append(follow)
    app.on_cleanup.append(stop)
    return app


async def start(
    rollout: ConfigRollout[RoutingConfig], data: bytes, reason: str, tasks: set[asyncio.Task[Any]]
) -> int:
    """Start a rollout of ``data`` and run its evaluations in the background."""
    version = await rollout.start(data, reason)
    tasks.add(asyncio.create_task(rollout.run()))
    return version


def stub_backend(name: str, *, status: int = 200) -> web.Application:
    """A backend that answers ``GET /work`` with ``status`` (the run-by-hand ``spare-1``: 503)."""

    async def work(request: web.Request) -> web.Response:
        return web.Response(status=status, text=f"{'ok' if status == 200 else 'down'} from {name}")

    app = web.Application()
    app.router.add_get("/work", work)
    return app


async def main(port: int) -> None:
    """Stub backends, a redis-server and the router, until SIGINT or SIGTERM; all stopped."""
    from chaos.servers import redis_server

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runners: list[web.AppRunner] = []
    urls: dict[str, str] = {}
    try:
        for name in [*(f"{region}-1" for region in REGIONS), "spare-1"]:
            runner = web.AppRunner(stub_backend(name, status=503 if name == "spare-1" else 200))
            runners.append(runner)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            urls[name] = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with redis_server() as redis:
            router = web.AppRunner(await build_app(redis.url, urls.__getitem__))
            try:  # the router stops before Redis does: its rollout's client closes first
                await router.setup()
                await web.TCPSite(router, "127.0.0.1", port).start()
                print(f"router on http://127.0.0.1:{port}; backends {json.dumps(urls)}")
                await stop.wait()
            finally:
                await router.cleanup()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


def _parse(argv: list[str] | None = None) -> Mapping[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    return vars(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover - run by hand
    asyncio.run(main(**_parse()))
