"""A second tenant of the topology: a server whose factory finds the servers before it, load
requests sent to it (``RequestSpec.target``), and an SLO on how much its latency grew."""

from __future__ import annotations

import pytest

from chaos.engine import run_scenario
from chaos.scenario import LatencyGrowth, ScenarioError
from chaos.toxiproxy.control import toxiproxy_server
from tests.chaos.tenant_scenarios import scenario

pytestmark = [pytest.mark.chaos, pytest.mark.real_server]


async def test_a_second_tenant_gets_its_requests_and_its_latency_growth_is_judged() -> None:
    async with toxiproxy_server(seed=1) as control:
        result = await run_scenario(scenario(), control, seed=2, arms=["guarded"])
    (arm,) = result.arms
    assert (arm.verdict, arm.error) == ("mitigated", None)
    assert arm.load is not None
    assert arm.load.counts(arm.load.tag_mask("auth")) == {"auth_ok": 60}
    assert arm.load.counts(arm.load.tag_mask("user")) == {"ok": 60}
    (growth,) = [slo for slo in arm.slos if slo.name == "auth-p99-growth"]
    assert growth.value is not None
    assert growth.value > 0
    assert "x its p99 in" in growth.description


async def test_too_few_tenant_requests_for_a_p99_is_a_harness_error() -> None:
    async with toxiproxy_server(seed=1) as control:
        result = await run_scenario(scenario(min_requests=1000), control, seed=2, arms=["guarded"])
    (arm,) = result.arms
    assert arm.verdict == "error"
    assert "insufficient data: 30 'auth' requests in window 'early'" in (arm.error or "")


async def test_a_request_to_a_target_the_topology_lacks_is_a_harness_error() -> None:
    import dataclasses

    from chaos.load import Load
    from tests.chaos.tenant_scenarios import elsewhere

    broken = dataclasses.replace(scenario(), load=Load(rate=10, duration=1.2, request=elsewhere))
    async with toxiproxy_server(seed=1) as control:
        result = await run_scenario(broken, control, seed=2, arms=["guarded"])
    (arm,) = result.arms
    assert arm.verdict == "error"
    assert "targets 'nowhere', which the topology does not have" in (arm.error or "")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"q": 0}, "q must be in"),
        ({"max": 0}, "max must be > 0"),
        ({"baseline": "late"}, "window and baseline are both 'late'"),
    ],
)
def test_a_latency_growth_slo_refuses_what_cannot_be_measured(
    kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"name": "g", "max": 2.0, "window": "late", "baseline": "early"}
    with pytest.raises(ScenarioError, match=message):
        LatencyGrowth(**{**arguments, **kwargs})  # type: ignore[arg-type]
