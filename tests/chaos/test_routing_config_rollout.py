"""Scenario ``routing-config-rollout`` judged by the engine, and its example router run by hand.

The scenario runs at :data:`~chaos.scenarios.routing_config_rollout.MIN_SCALE` (12 s of load
per arm, each arm a fleet of 3 router processes sharing a real Redis): applied at once, the
routing change must fail two regions of three and leave the third alone; through the example's
``ConfigRollout``, the canary region's gate must fail and the fleet roll back by itself.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from chaos.scenarios.routing_config_rollout import EXAMPLE, MIN_SCALE
from tests.chaos._arm_report import judged_pair, slo_values
from tests.chaos._example_process import example_service

pytestmark = [pytest.mark.chaos, pytest.mark.real_server]


async def test_a_change_applied_at_once_breaks_two_regions_and_a_rollout_does_not() -> None:
    naive, guarded = await judged_pair("routing-config-rollout", MIN_SCALE)

    naive_values, guarded_values = slo_values(naive), slo_values(guarded)
    assert naive_values["us-answered"] == pytest.approx(0.0, abs=0.05)
    assert naive_values["asia-unaffected"] == 1.0
    assert naive_values["storm-config-never-served"] == 3  # every replica served it
    assert guarded_values["storm-config-never-served"] == 0
    assert guarded_values["us-answered"] == 1.0
    assert guarded_values["asia-answered"] == 1.0
    # the guarded arm's failed requests: at most 5% of the naive arm's
    naive_failed = naive.load.counts().get("failed", 0)
    guarded_failed = guarded.load.counts().get("failed", 0)
    assert naive_failed > 0
    assert guarded_failed <= 0.05 * naive_failed, (guarded_failed, naive_failed)
    notes = " | ".join(guarded.notes)
    assert "storm config: rejected before any instance saw it (pool: " in notes
    assert "rolled back " in notes
    assert "gate failed: success_ratio" in notes
    for arm in (naive, guarded):
        steps = [f.at for f in arm.faults if f.kind == "ArmStep"]
        assert steps == pytest.approx([2.0 * MIN_SCALE, 4.0 * MIN_SCALE])  # scaled


async def test_example_router_routes_rejects_a_storm_and_rolls_back_a_bad_change() -> None:
    service = example_service(EXAMPLE, ready_path="rollout")
    async with service as base, aiohttp.ClientSession() as session:
        async with session.get(base + "route?user=u1&region=eu") as response:
            assert (response.status, await response.text()) == (200, "ok from eu-1")
        storm = {
            "regions": {"eu": {"targets": ["eu-1"]}},
            "pool": {"max_size": 500, "connects_per_second": 500},
        }
        async with session.post(base + "config", json=storm) as response:
            assert response.status == 422
            body = await response.json()
        [[field, rule, message]] = body["rejected"]
        assert (field, rule) == ("pool", "fleet_connection_budget")
        assert "1500 connections" in message
        bad = {"regions": {"eu": {"targets": []}}}
        async with session.post(base + "config", json=bad) as response:
            assert response.status == 422
            assert (await response.json())["rejected"][0][:2] == ["regions.eu.targets", "too_short"]
        nowhere = {"regions": {"eu": {"targets": ["nowhere"]}, "us": {"targets": ["us-1"]}}}
        async with session.post(base + "config", json=nowhere) as response:
            assert response.status == 422
            problem = (await response.json())["rejected"][0]
            assert problem[:2] == ["regions.eu.targets", "known_target"]
        dead = {"regions": {"eu": {"targets": ["spare-1"]}, "us": {"targets": ["us-1"]}}}
        async with session.post(base + "config", json=dead) as response:
            assert response.status == 202
        async with session.post(base + "config", json=dead) as response:
            assert response.status == 409  # one at a time
        for i in range(60):  # eu is the canary: its new target answers 503
            for region in ("eu", "us"):
                async with session.get(base + f"route?user=u{i}&region={region}") as response:
                    await response.read()
        for _ in range(40):
            async with session.get(base + "rollout") as response:
                status = json.loads(await response.text())
            if status["state"] == "rolled_back":
                break
            await asyncio.sleep(0.1)
        assert status["state"] == "rolled_back", status
        async with session.get(base + "route?user=u1&region=eu") as response:
            assert response.status == 200
