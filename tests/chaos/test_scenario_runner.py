"""The ``chaos_scenario`` fixture's runner on its own: which scenario it finds and what it asks
the engine for (a recording stand-in for the engine; the fixture's real runs are in
test_chaos_scenario_fixture.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pytest

import chaos.engine
import chaos.scenarios
from chaos.cli import DEFAULT_RETRIES
from chaos.pytest_plugin import DEFAULT_SCENARIO_RETRIES, ScenarioRunner
from chaos.scenarios import discover_scenarios
from chaos.toxiproxy.control import ToxiproxyControl

SELFTEST = "tests.chaos.selftest_scenarios"
CONTROL = cast(ToxiproxyControl, object())


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Every call of the engine's run_scenario, which returns the string "result"."""
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    async def run_scenario(*args: Any, **kwargs: Any) -> str:
        calls.append((args, kwargs))
        return "result"

    monkeypatch.setattr(chaos.engine, "run_scenario", run_scenario)
    return calls


def test_the_default_retries_are_chaos_runs() -> None:
    assert DEFAULT_SCENARIO_RETRIES == DEFAULT_RETRIES == 4


async def test_by_default_a_scenario_runs_as_chaos_run_runs_it(
    runs: list[tuple[tuple[Any, ...], dict[str, Any]]],
) -> None:
    result = await ScenarioRunner(CONTROL)("rate-limiter-outage")
    assert result == "result"
    scenario = discover_scenarios()["rate-limiter-outage"]
    assert runs == [
        ((scenario, CONTROL), {"seed": 1, "scale": 1.0, "arms": None, "retries": 4}),
    ]


@pytest.mark.parametrize("modules", [SELFTEST, [SELFTEST], (SELFTEST,)])
async def test_every_argument_is_passed_on(
    runs: list[tuple[tuple[Any, ...], dict[str, Any]]], modules: str | Sequence[str]
) -> None:
    runner = ScenarioRunner(CONTROL)
    await runner(
        "selftest-deadline",
        scale=0.5,
        seed=7,
        arms=["guarded"],
        retries=0,
        scenarios_module=modules,
    )
    scenario = discover_scenarios([SELFTEST])["selftest-deadline"]
    assert runs == [
        ((scenario, CONTROL), {"seed": 7, "scale": 0.5, "arms": ["guarded"], "retries": 0}),
    ]


async def test_an_unknown_name_lists_every_known_scenario_in_order(
    runs: list[tuple[tuple[Any, ...], dict[str, Any]]],
) -> None:
    known = ", ".join(discover_scenarios([SELFTEST]))
    with pytest.raises(LookupError) as raised:
        await ScenarioRunner(CONTROL)("nope", scenarios_module=SELFTEST)
    assert str(raised.value) == f"unknown scenario 'nope' (known: {known})"
    assert runs == []


async def test_with_no_scenario_at_all_the_known_ones_are_none(
    monkeypatch: pytest.MonkeyPatch, runs: list[tuple[tuple[Any, ...], dict[str, Any]]]
) -> None:
    asked: list[object] = []

    def discover(modules: object = None) -> dict[str, object]:
        asked.append(modules)
        return {}

    monkeypatch.setattr(chaos.scenarios, "discover_scenarios", discover)
    with pytest.raises(LookupError) as raised:
        await ScenarioRunner(CONTROL)("nope")
    assert str(raised.value) == "unknown scenario 'nope' (known: none)"
    assert asked == [None]
