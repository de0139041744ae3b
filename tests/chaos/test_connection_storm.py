"""Scenario ``connection-storm`` judged by the engine, and its example service run by hand.

The scenario runs at :data:`~chaos.scenarios.connection_storm.MIN_SCALE` (about 10 s of load
per arm, each arm a fleet of 4 replica processes): the plain client must reproduce the
storm and starve the auth tenant, the example's bounded pool and gate must keep the
hypothesis.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from chaos.scenarios.connection_storm import (
    EXAMPLE,
    GATE_OPTIONS,
    GATES_BOUND,
    HANDSHAKE,
    MIN_SCALE,
    REPLICAS,
    STORM_FACTOR,
)
from tests.chaos._arm_report import judged_pair, slo_values
from tests.chaos._example_process import example_service

pytestmark = [pytest.mark.chaos, pytest.mark.real_server]


async def test_plain_clients_storm_the_backend_and_the_gated_pools_do_not() -> None:
    naive, guarded = await judged_pair("connection-storm", MIN_SCALE)

    naive_values, guarded_values = slo_values(naive), slo_values(guarded)
    storm = naive_values["connect-storm"]
    assert storm is not None
    assert storm >= STORM_FACTOR * GATES_BOUND
    growth = naive_values["auth-p99-within-2x"]
    assert growth is not None
    assert growth > 10  # the auth tenant's tail exploded, not just grew

    assert guarded_values["auth-answered"] == 1.0
    growth = guarded_values["auth-p99-within-2x"]
    assert growth is not None
    assert growth <= 2.0
    most = guarded_values["connects-within-gates"]
    assert most is not None
    assert 0 < most <= GATES_BOUND
    for arm in (naive, guarded):
        [step] = [f for f in arm.faults if f.kind == "ArmStep"]  # the rollout, in all replicas
        assert step.at == pytest.approx(4.0 * MIN_SCALE)  # on the scaled timeline
        assert set(arm.gauges) == {"connects_per_s", "open_connections"}


def test_the_gates_bound_is_what_four_gates_admit_per_sample() -> None:
    rate = GATE_OPTIONS.connect_rate
    interval = 0.25
    assert REPLICAS * (interval * rate.limit + rate.burst + 1) / interval == GATES_BOUND
    # the storm the naive arm makes saturates the backend's core; the gates' sum does not
    assert GATES_BOUND * HANDSHAKE < 0.25
    assert STORM_FACTOR * GATES_BOUND * HANDSHAKE > 0.6


async def test_example_service_answers_and_gates_its_reconnects() -> None:
    service = example_service(EXAMPLE)
    async with service as base, aiohttp.ClientSession() as session:
        async with session.get(base) as response:
            assert response.status == 200
            assert await response.text() == "OK profile"
        async with session.post(base + "config?reconnect_per_request=1&retries=2") as response:
            assert response.status == 200
        answers = []
        for _ in range(12):  # 12 requests, each on a new connection: 5 connects a second
            async with session.get(base) as response:
                answers.append(response.status)
        async with session.get(base + "stats") as response:
            stats = json.loads(await response.text())
        assert set(answers) <= {200, 503}
        assert answers.count(200) >= 2
        assert stats["open"] <= 4
        assert 2 <= stats["connects"] <= 13
    await asyncio.sleep(0)
