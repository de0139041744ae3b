"""A fleet arm: the service as N replica processes, the load spread over them, gauges summed,
steps run in every replica, and every process stopped after the arm."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from aiohttp import web

from chaos.engine import run_scenario
from chaos.scenario import Arm, ArmContext, ScenarioError
from chaos.toxiproxy.control import toxiproxy_server
from tests.chaos.fleet_scenarios import FLEET, REPLICAS, failing_service

pytestmark = [pytest.mark.chaos, pytest.mark.real_server]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_fleet_arm_spreads_the_load_sums_gauges_and_steps_every_replica() -> None:
    async with toxiproxy_server(seed=1) as control:
        result = await run_scenario(FLEET, control, seed=3, arms=["guarded"])
    (arm,) = result.arms
    assert (arm.verdict, arm.error) == ("mitigated", None)
    assert arm.load is not None
    counts = arm.load.counts()
    assert set(counts) == {f"replica-{i}" for i in range(REPLICAS)}
    total = sum(counts.values())
    assert all(abs(n - total / REPLICAS) <= 1 for n in counts.values())  # round-robin
    ones = arm.gauges["one"].values
    assert len(ones) >= 5
    assert np.all(ones == REPLICAS)
    served = arm.gauges["served"].values
    assert served[-1] >= 0.9 * total  # the sum over the replicas of what each served
    assert [f.kind for f in arm.faults] == ["ArmStep"]
    stepped = [note for note in arm.notes if "stepped in" in note]
    assert len(stepped) == REPLICAS
    pids = {int(note.split("stepped in ")[1].split()[0]) for note in stepped}
    assert len(pids) == REPLICAS
    assert os.getpid() not in pids
    assert not any(_alive(pid) for pid in pids)  # every replica stopped with the arm
    assert sorted(note.split(":")[0] for note in arm.notes if "served" in note) == [
        f"replica {i}" for i in range(REPLICAS)
    ]


async def test_a_replica_that_cannot_build_is_a_harness_error() -> None:
    scenario = dataclasses.replace(
        FLEET,
        arms=(
            Arm("naive", "naive", failing_service, replicas=2),
            Arm("guarded", "guarded", failing_service, replicas=2),
        ),
    )
    async with toxiproxy_server(seed=1) as control:
        result = await run_scenario(scenario, control, seed=1, arms=["guarded"])
    (arm,) = result.arms
    assert arm.verdict == "error"
    assert arm.error is not None
    assert "replica 0 failed to build: RuntimeError: replica 0 cannot start" in arm.error


async def test_a_fleet_builder_that_is_not_module_level_is_a_harness_error() -> None:
    async def local(ctx: ArmContext) -> web.Application:
        return web.Application()

    scenario = dataclasses.replace(
        FLEET,
        arms=(
            Arm("naive", "naive", local, replicas=2),
            Arm("guarded", "guarded", local, replicas=2),
        ),
    )
    async with toxiproxy_server(seed=1) as control:
        result = await run_scenario(scenario, control, seed=1, arms=["guarded"])
    (arm,) = result.arms
    assert arm.verdict == "error"
    assert "must be a module-level function" in (arm.error or "")


@pytest.mark.parametrize("replicas", [0, -1, True, 2.0])
def test_replicas_must_be_a_positive_int(replicas: object) -> None:
    with pytest.raises(ScenarioError, match="replicas must be an int >= 1"):
        Arm("a", "guarded", failing_service, replicas=replicas)  # type: ignore[arg-type]
