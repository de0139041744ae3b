"""A scenario with a second tenant (``test_tenants.py``): an ``auth`` server that finds the
shared backend by the addresses its factory is given, and load requests sent to it."""

from __future__ import annotations

import asyncio

from aiohttp import web

from chaos.load import Load, Reply, RequestSpec
from chaos.scenario import (
    AiohttpServer,
    Arm,
    ArmContext,
    Incident,
    LatencyGrowth,
    Scenario,
    SuccessRatio,
    TcpServer,
    Window,
)


async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers each line with ``ok``."""
    while await reader.readline():
        writer.write(b"ok\n")
        await writer.drain()
    writer.close()


def auth_app(servers: dict[str, tuple[str, int]]) -> web.Application:
    """A tenant of the backend: one request line per HTTP request, on its own connection."""
    host, port = servers["backend"]

    async def login(request: web.Request) -> web.Response:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"login\n")
        answer = await reader.readline()
        writer.close()
        return web.Response(text=answer.decode().strip(), headers={"X-Tenant": "auth"})

    app = web.Application()
    app.router.add_get("/login", login)
    return app


async def service(ctx: ArmContext) -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="service")

    app = web.Application()
    app.router.add_get("/", hello)
    return app


def request(i: int, rng: object) -> RequestSpec:
    if i % 2:
        return RequestSpec(path="/login", tag="auth", target="auth")
    return RequestSpec(tag="user")


def elsewhere(i: int, rng: object) -> RequestSpec:
    return RequestSpec(target="nowhere")


def classify(spec: RequestSpec, reply: Reply) -> str:
    if reply.status != 200:
        return "error"
    return "auth_ok" if reply.headers.get("X-Tenant") == "auth" else "ok"


def scenario(min_requests: int = 20) -> Scenario:
    return Scenario(
        name="selftest-tenants",
        incident=Incident("selftest.txt", "two tenants of one backend"),
        pattern="none",
        load=Load(rate=100, duration=1.2, request=request, classify=classify),
        arms=(Arm("naive", "naive", service), Arm("guarded", "guarded", service)),
        servers=(TcpServer("backend", backend), AiohttpServer("auth", auth_app)),
        windows=(Window("early", 0.0, 0.6), Window("late", 0.6, 1.2)),
        hypothesis=(
            SuccessRatio("answered", min=1.0, success=("ok", "auth_ok")),
            LatencyGrowth(
                "auth-p99-growth",
                max=50.0,
                window="late",
                baseline="early",
                tag="auth",
                min_requests=min_requests,
            ),
        ),
        breaks=("answered",),
    )
