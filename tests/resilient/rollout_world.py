"""What the rollout tests share: a routing configuration (a pydantic model), its validators, and
a rollout on a memory store in virtual time, with helpers that feed it samples."""

from __future__ import annotations

import json
from typing import Any

import pydantic

from resilient.clock import VirtualClock
from resilient.events import EventBus, EventRecorder
from resilient.rollout import (
    ConfigRollout,
    MemoryConfigStore,
    Problem,
    PydanticSchema,
    RolloutOptions,
    Served,
    SuccessRatioGate,
    canary,
    latency_gate,
)


class Region(pydantic.BaseModel):
    targets: list[str] = pydantic.Field(min_length=1)
    timeout: float = pydantic.Field(gt=0, default=1.0)


class Routing(pydantic.BaseModel):
    regions: dict[str, Region]
    healthy: list[str] = []


def every_region_keeps_a_healthy_target(config: Routing) -> list[Problem]:
    """The semantic rule of issue 11: a region whose targets are all unhealthy is a problem."""
    if not config.healthy:
        return []
    return [
        Problem(f"regions.{name}.targets", "healthy_target", "no healthy target")
        for name, region in config.regions.items()
        if not set(region.targets) & set(config.healthy)
    ]


def routing(**targets: str) -> bytes:
    """A routing configuration sending each region to one target."""
    return json.dumps({"regions": {name: {"targets": [t]} for name, t in targets.items()}}).encode()


GOOD = routing(eu="a", us="b", asia="c")
BAD = routing(eu="dead", us="b", asia="c")

FAST = RolloutOptions(
    stages=canary(10.0, bake=60.0),
    gates=(SuccessRatioGate(min_samples=20), latency_gate()),
    evaluation_interval=5.0,
)


async def opened(
    options: RolloutOptions = FAST, *, data: bytes = GOOD, **kwargs: Any
) -> tuple[ConfigRollout[Routing], VirtualClock, EventRecorder, MemoryConfigStore]:
    """A rollout on a fresh memory store holding ``data`` as version 1, opened."""
    clock = VirtualClock()
    bus = EventBus()
    recorder = EventRecorder()
    bus.subscribe(recorder)
    store = MemoryConfigStore()
    rollout: ConfigRollout[Routing] = ConfigRollout(
        store, options, schema=PydanticSchema(Routing), clock=clock, events=bus, **kwargs
    )
    await rollout.bootstrap(data)
    return rollout, clock, recorder, store


def feed(
    rollout: ConfigRollout[Routing],
    count: int,
    *,
    canary_ok: float = 1.0,
    control_ok: float = 1.0,
    canary_latency: float = 0.010,
    control_latency: float = 0.010,
    cohort: str | None = None,
) -> tuple[int, int]:
    """``count`` requests of keys ``user-0``... (or all of ``cohort``), each recorded with the
    success share and latency of its side; returns (canary, control) requests counted."""
    seen = [0, 0]
    for i in range(count):
        served: Served[Routing] = rollout.config_for(f"user-{i}", cohort)
        side = 0 if served.canary else 1
        share = canary_ok if served.canary else control_ok
        ok = (seen[side] % 100) < share * 100
        latency = (canary_latency if served.canary else control_latency) * (1 + (i % 7) / 10)
        if rollout.record(served, ok=ok, latency=latency):
            seen[side] += 1
    return seen[0], seen[1]
