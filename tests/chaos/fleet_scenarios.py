"""Builders and a scenario for the fleet tests (``test_fleet.py``): module-level, as a fleet
arm's replicas import their builder by reference."""

from __future__ import annotations

import os

from aiohttp import web

from chaos.load import Load, Reply, RequestSpec
from chaos.scenario import Arm, ArmContext, Gauge, Incident, Scenario, SuccessRatio, Window

REPLICAS = 3
REPLICA_HEADER = "X-Replica"


async def replica_service(ctx: ArmContext) -> web.Application:
    """Answers with its replica index and pid; counts what it served (gauge ``served``), and
    one step, at 0.5 s, that notes the pid it ran in."""
    index, count = ctx.replica
    served = [0]

    async def hello(request: web.Request) -> web.Response:
        served[0] += 1
        return web.Response(text=str(os.getpid()), headers={REPLICA_HEADER: str(index)})

    def step() -> None:
        ctx.note(f"stepped in {os.getpid()} ({index} of {count})")

    async def report(app: web.Application) -> None:
        ctx.note(f"served {served[0]}")

    app = web.Application()
    app.router.add_get("/", hello)
    app.on_cleanup.append(report)
    ctx.gauge("served", lambda: float(served[0]))
    ctx.gauge("one", lambda: 1.0)
    ctx.at(0.5, step, "every replica steps")
    return app


async def failing_service(ctx: ArmContext) -> web.Application:
    raise RuntimeError(f"replica {ctx.replica[0]} cannot start")


def classify(spec: RequestSpec, reply: Reply) -> str:
    return f"replica-{reply.headers.get(REPLICA_HEADER, 'none')}"


FLEET = Scenario(
    name="selftest-fleet",
    incident=Incident("selftest.txt", "a service run as a fleet of processes"),
    pattern="none",
    load=Load(rate=60, duration=1.5, classify=classify),
    arms=(
        Arm("naive", "naive", replica_service, replicas=REPLICAS),
        Arm("guarded", "guarded", replica_service, replicas=REPLICAS),
    ),
    windows=(Window("all", 0.0, 1.5),),
    hypothesis=(
        SuccessRatio("answered", min=1.0, success=tuple(f"replica-{i}" for i in range(3))),
        Gauge("every-replica-counted", "one", min=REPLICAS),
    ),
    breaks=("answered",),
)
