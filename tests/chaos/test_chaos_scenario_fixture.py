"""The ``chaos_scenario`` fixture: a user's test runs a named scenario and asserts on its result
(used here directly, and through ``pytester`` as a user's own suite uses it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.pytest_plugin import ScenarioRunner

pytest_plugins = ["pytester"]
pytestmark = [pytest.mark.chaos, pytest.mark.real_server]

ROOT = Path(__file__).resolve().parents[2]
SELFTEST = "tests.chaos.selftest_scenarios"


async def test_a_test_runs_a_named_scenario_and_asserts_it_passed(
    chaos_scenario: ScenarioRunner,
) -> None:
    result = await chaos_scenario("selftest-deadline", scenarios_module=SELFTEST, scale=0.4)
    assert result.passed, result.summary()
    assert result.verdicts == {"naive": "reproduced", "guarded": "mitigated"}
    assert result.arm("guarded").trustworthy
    assert result.scale == 0.4
    assert result.summary().splitlines()[0] == "selftest-deadline / naive (naive): reproduced"
    with pytest.raises(KeyError, match=r"no arm 'other' was run \(arms: naive, guarded\)"):
        result.arm("other")


async def test_an_unknown_scenario_names_the_known_ones(chaos_scenario: ScenarioRunner) -> None:
    with pytest.raises(LookupError, match=r"unknown scenario 'nope' \(known: selftest-deadline, "):
        await chaos_scenario("nope", scenarios_module=[SELFTEST])


USER_TESTS = f"""
import pytest


async def test_my_guard_holds(chaos_scenario):
    result = await chaos_scenario(
        "selftest-broken-guard", scenarios_module="{SELFTEST}", scale=0.4, arms=["guarded"]
    )
    assert not result.passed
    assert result.verdicts == {{"guarded": "failed"}}
    assert "FAIL p99-during-fault" in result.summary()
"""


def test_a_users_suite_gets_the_fixture_from_the_installed_plugin(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)
    monkeypatch.syspath_prepend(str(ROOT))
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
