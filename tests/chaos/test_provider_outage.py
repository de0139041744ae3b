"""Scenario ``provider-outage`` judged by the engine, and its example service run by hand.

The scenario runs at :data:`~chaos.scenarios.provider_outage.MIN_SCALE` (about 16 s of load
per arm, each arm a fleet of 3 client processes): the client that retries its only provider at
once must fail through the outage and storm the provider when it comes back slow; the
example's failover must answer at least 99% within the deadline, at most 1.2 attempts a
request, and let the primary's load come back slowly.
"""

from __future__ import annotations

import json

import aiohttp
import pytest

from chaos.scenarios.provider_outage import EXAMPLE, MIN_SCALE, RATE
from tests.chaos._arm_report import judged_pair, slo_values
from tests.chaos._example_process import example_service

pytestmark = [pytest.mark.chaos, pytest.mark.real_server]


async def test_retrying_one_provider_fails_and_storms_and_the_failover_does_not() -> None:
    naive, guarded = await judged_pair("provider-outage", MIN_SCALE)
    naive_values, guarded_values = slo_values(naive), slo_values(guarded)
    storm = naive_values["retry-storm"]
    assert storm is not None
    assert storm >= 3 * RATE
    # The bound, not 1.0: one run of 10 beside a CPU hog, on a machine loaded to 4 on
    # 2 cores, answered 99.84% (1 request in 600 failed).
    assert guarded_values["answered"] >= 0.99, guarded.load.counts()
    extra = guarded_values["attempts-within-1.2-per-request"]
    assert extra is not None
    assert extra <= 0
    ramp = guarded_values["primary-ramps-back"]
    assert ramp is not None
    assert ramp <= 0.6 * RATE
    assert guarded.load.counts().get("degraded", 0) == 0  # the secondary answered, not the fallback
    for arm in (naive, guarded):
        assert set(arm.gauges) == {
            "primary_attempts_per_s",
            "secondary_attempts_per_s",
            "extra_attempts",
        }


async def test_example_service_answers_from_the_primary_and_reports_its_stats() -> None:
    service = example_service(EXAMPLE, ready_path="stats")
    async with service as base, aiohttp.ClientSession() as session:
        for i in range(10):
            async with session.get(base + f"ask?prompt=p{i}") as response:
                assert response.status == 200
                assert await response.text() == "answer from primary"
                assert response.headers["X-Provider"] == "primary"
                assert response.headers["X-Degraded"] == "0"
        async with session.get(base + "stats") as response:
            stats = json.loads(await response.text())
        assert stats["primary"]["attempts"] >= 10
        assert stats["budget"]["requests"] == 10
