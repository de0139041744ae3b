"""The engine judged on a scenario whose outcome is known (tests/chaos/selftest_scenarios.py).

An aiohttp backend behind the proxy, a 400 ms latency toxic for a while: the naive service
(no deadline) must reproduce the slowdown, the guarded one (50 ms deadline, fallback answer)
must mitigate it, and a "guard" whose deadline outlasts the fault must fail the run with the
guard-failed exit status. Scaled to half length to stay short.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from chaos._engine import run_scenario
from chaos.cli import EXIT_GUARD_FAILED, main
from chaos.load import schedule
from chaos.report import load_schema
from chaos.scenario import Scenario
from chaos.toxiproxy.control import toxiproxy_server
from tests.chaos.selftest_scenarios import SCENARIOS

SCALE = 0.5
BY_NAME: dict[str, Scenario] = {s.name: s for s in SCENARIOS}

pytestmark = [pytest.mark.chaos, pytest.mark.real_server]


async def test_naive_reproduces_and_guarded_mitigates_on_the_same_schedule() -> None:
    scenario = BY_NAME["selftest-deadline"]
    async with toxiproxy_server(seed=1) as control:
        result = await run_scenario(scenario, control, seed=5, scale=SCALE)
    naive, guarded = result.arms
    assert (naive.name, naive.verdict, naive.error) == ("naive", "reproduced", None)
    assert (guarded.name, guarded.verdict, guarded.error) == ("guarded", "mitigated", None)
    assert naive.load is not None
    assert guarded.load is not None
    assert np.array_equal(naive.load.scheduled, guarded.load.scheduled)
    assert np.array_equal(naive.load.scheduled, schedule(scenario.load.scaled(SCALE), 5))
    assert guarded.load.counts().get("fallback", 0) > 0
    assert "fallback" not in naive.load.counts()
    for arm in result.arms:
        assert [f.kind for f in arm.faults] == ["AddToxic", "RemoveToxic"]
        assert [f.at for f in arm.faults] == [1.0, 2.0]
        assert all(f.applied_at >= f.at for f in arm.faults)
        samples = arm.gauges["in_flight"]
        assert len(samples.t) >= 10
        assert np.all(np.diff(samples.t) > 0)
    assert result.toxiproxy_version


def test_a_broken_guard_fails_the_run_with_the_guard_failed_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "run", "selftest-broken-guard",
            "--scenarios-module", "tests.chaos.selftest_scenarios",
            "--scale", str(SCALE), "--arms", "guarded", "--seed", "3",
            "--json", "--report", str(tmp_path),
        ]
    )  # fmt: skip
    assert status == EXIT_GUARD_FAILED
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((tmp_path / "report.json").read_text())
    for document in (printed, written):
        jsonschema.validate(document, load_schema(), cls=jsonschema.Draft202012Validator)
    (scenario,) = written["scenarios"]
    (arm,) = scenario["arms"]
    assert (arm["name"], arm["verdict"]) == ("guarded", "failed")
    failed = [slo["name"] for slo in arm["slos"] if not slo["passed"]]
    assert failed == ["p99-during-fault"]
    assert written["exit_status"] == EXIT_GUARD_FAILED
    assert written["seed"] == 3
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in page
    assert "selftest-broken-guard" in page
