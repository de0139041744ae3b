"""Scenarios that test the engine itself.

Run them with ``chaos run --scenarios-module tests.chaos.selftest_scenarios all``.

An aiohttp backend sits behind a proxy; a latency toxic slows it for a while. The service under
test calls the backend for every request. The naive arm waits as long as the backend takes;
the guarded arm gives the call a deadline and answers with a fallback when it passes. The
``broken-guard`` scenario has a "guard" whose deadline is longer than the fault, so it must fail.
"""

from __future__ import annotations

import asyncio

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


def _service(ctx: ArmContext, deadline: float | None) -> web.Application:
    """The service under test: GET / asks the backend (through its proxy), within ``deadline``."""
    backend = ctx.url("backend")
    app = web.Application()
    sessions: list[aiohttp.ClientSession] = []
    in_flight = [0]

    async def handle(request: web.Request) -> web.Response:
        in_flight[0] += 1
        try:
            if deadline is None:
                async with sessions[0].get(backend) as response:
                    return web.Response(text=await response.text())
            try:
                async with asyncio.timeout(deadline), sessions[0].get(backend) as response:
                    return web.Response(text=await response.text())
            except TimeoutError:
                return web.Response(text="fallback", headers={"X-Fallback": "deadline"})
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


def classify(spec: object, reply: object) -> str:
    from chaos.load import Reply

    assert isinstance(reply, Reply)
    if reply.status != 200:
        return "error"
    return "fallback" if reply.headers.get("X-Fallback") else "ok"


_LOAD = Load(rate=100, duration=6.0, timeout=5.0, classify=classify)
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
]
