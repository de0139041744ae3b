"""Scenarios that test the engine itself.

Run them with ``chaos run --scenarios-module tests.chaos.selftest_scenarios all``.

An aiohttp backend sits behind a proxy; a latency toxic slows it for a while. The service under
test calls the backend for every request. The naive arm waits as long as the backend takes;
the guarded arm gives the call a deadline and answers with a fallback when it passes. The
``broken-guard`` scenario has a "guard" whose deadline is longer than the fault, so it must fail.

The ``late-*`` scenarios make the load process itself run late, as a busy machine does: their
service marks its replies, and :func:`classify_burning` (run by the load process on every
reply) then keeps that process busy for :data:`BURN` seconds on every tenth one, so the
requests due meanwhile start late. ``selftest-late-broken-guard`` does it on every attempt of
the broken guard: the harness cannot trust that measurement, so it must not call the guard
failed. ``selftest-late-once`` does it on the first attempt only (of every pair of builds:
:func:`reset_late_once` starts a pair), so a rerun gets a trusted verdict.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import aiohttp
from aiohttp import web

from chaos.load import Load
from chaos.scenario import (
    AddToxic,
    AiohttpServer,
    Arm,
    ArmContext,
    Incident,
    LatencyPercentile,
    OutcomeRatio,
    Proxy,
    RemoveToxic,
    Scenario,
    SuccessRatio,
    Window,
)

FAULT_LATENCY_MS = 400
"""The latency toxic's delay: far above the guarded deadline, far below the load timeout."""

GUARD_DEADLINE = 0.05
"""The guarded arm's deadline on the backend call, seconds."""


async def _hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


def backend_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", _hello)
    return app


BURN_HEADER = "X-Selftest-Burn"
"""Marks a reply whose classification keeps the load process busy (see the module docstring)."""

BURN = 0.05
"""Seconds the load process is kept busy on every tenth marked reply: half of its time."""


def _service(ctx: ArmContext, deadline: float | None, *, burn: bool = False) -> web.Application:
    """The service under test: GET / asks the backend (through its proxy), within ``deadline``;
    with ``burn``, every reply is marked so that the load process runs late."""
    backend = ctx.url("backend")
    marks = {BURN_HEADER: "1"} if burn else {}
    app = web.Application()
    sessions: list[aiohttp.ClientSession] = []
    in_flight = [0]

    async def handle(request: web.Request) -> web.Response:
        in_flight[0] += 1
        try:
            if deadline is None:
                async with sessions[0].get(backend) as response:
                    return web.Response(text=await response.text(), headers=marks)
            try:
                async with asyncio.timeout(deadline), sessions[0].get(backend) as response:
                    return web.Response(text=await response.text(), headers=marks)
            except TimeoutError:
                return web.Response(text="fallback", headers={"X-Fallback": "deadline", **marks})
        finally:
            in_flight[0] -= 1

    async def open_session(app: web.Application) -> None:
        sessions.append(aiohttp.ClientSession())

    async def close_session(app: web.Application) -> None:
        await sessions[0].close()

    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    app.router.add_get("/", handle)
    ctx.gauge("in_flight", lambda: float(in_flight[0]))
    return app


async def naive(ctx: ArmContext) -> web.Application:
    return _service(ctx, None)


async def guarded(ctx: ArmContext) -> web.Application:
    return _service(ctx, GUARD_DEADLINE)


async def broken_guard(ctx: ArmContext) -> web.Application:
    return _service(ctx, 1.0)


async def late_broken_guard(ctx: ArmContext) -> web.Application:
    return _service(ctx, 1.0, burn=True)


_late_once_builds = itertools.count()


def reset_late_once() -> None:
    """The next build of ``selftest-late-once``'s guarded arm is a first attempt (late)."""
    global _late_once_builds
    _late_once_builds = itertools.count()


async def late_once(ctx: ArmContext) -> web.Application:
    return _service(ctx, GUARD_DEADLINE, burn=next(_late_once_builds) % 2 == 0)


def classify(spec: object, reply: object) -> str:
    from chaos.load import Reply

    assert isinstance(reply, Reply)
    if reply.status != 200:
        return "error"
    return "fallback" if reply.headers.get("X-Fallback") else "ok"


_marked_replies = itertools.count()


def classify_burning(spec: object, reply: object) -> str:
    """:func:`classify`, keeping the load process busy for :data:`BURN` s on every tenth reply
    the service marked (runs in the load process)."""
    from chaos.load import Reply

    assert isinstance(reply, Reply)
    if reply.headers.get(BURN_HEADER) and next(_marked_replies) % 10 == 0:
        until = time.perf_counter() + BURN
        while time.perf_counter() < until:
            pass
    return classify(spec, reply)


_LOAD = Load(rate=100, duration=6.0, timeout=5.0, classify=classify)
_BURNING_LOAD = Load(rate=100, duration=6.0, timeout=5.0, classify=classify_burning)
_TOPOLOGY = {
    "servers": (AiohttpServer("backend", backend_app),),
    "proxies": (Proxy("backend", upstream="backend"),),
    "faults": (
        AddToxic(2.0, "backend", "latency", "slow", {"latency": FAULT_LATENCY_MS}),
        RemoveToxic(4.0, "backend", "slow"),
    ),
    "windows": (Window("before", 0.0, 2.0), Window("fault", 2.0, 4.0)),
}
_HYPOTHESIS = (
    LatencyPercentile("p99-during-fault", max=0.2, window="fault"),
    SuccessRatio("answered", min=0.99, success=("ok", "fallback")),
)
_SIGNATURE = (OutcomeRatio("no-fallback", "fallback", max=0.0),)
_INCIDENT = Incident("selftest.txt", "a slow backend makes every request slow")

SCENARIOS = [
    Scenario(
        name="selftest-deadline",
        incident=_INCIDENT,
        pattern="deadline with fallback",
        load=_LOAD,
        arms=(Arm("naive", "naive", naive), Arm("guarded", "guarded", guarded)),
        hypothesis=_HYPOTHESIS,
        breaks=("p99-during-fault",),
        signature=_SIGNATURE,
        **_TOPOLOGY,  # type: ignore[arg-type]
    ),
    Scenario(
        name="selftest-broken-guard",
        incident=_INCIDENT,
        pattern="deadline with fallback (broken: deadline longer than the fault)",
        load=_LOAD,
        arms=(Arm("naive", "naive", naive), Arm("guarded", "guarded", broken_guard)),
        hypothesis=_HYPOTHESIS,
        breaks=("p99-during-fault",),
        signature=_SIGNATURE,
        **_TOPOLOGY,  # type: ignore[arg-type]
    ),
    Scenario(
        name="selftest-late-broken-guard",
        incident=_INCIDENT,
        pattern="deadline with fallback (broken), measured by a load process that runs late",
        load=_BURNING_LOAD,
        arms=(Arm("naive", "naive", naive), Arm("guarded", "guarded", late_broken_guard)),
        hypothesis=_HYPOTHESIS,
        breaks=("p99-during-fault",),
        signature=_SIGNATURE,
        **_TOPOLOGY,  # type: ignore[arg-type]
    ),
    Scenario(
        name="selftest-late-once",
        incident=_INCIDENT,
        pattern="deadline with fallback, its first attempt measured by a load running late",
        load=_BURNING_LOAD,
        arms=(Arm("naive", "naive", naive), Arm("guarded", "guarded", late_once)),
        hypothesis=_HYPOTHESIS,
        breaks=("p99-during-fault",),
        signature=_SIGNATURE,
        **_TOPOLOGY,  # type: ignore[arg-type]
    ),
]
