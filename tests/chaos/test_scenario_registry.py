"""Scenario modules loaded by name (the built-in package, ``--scenarios-module``): a module's
SCENARIOS, or a package's public submodules'; each mistake is an error naming the module."""

from __future__ import annotations

import uuid
from importlib import metadata
from pathlib import Path

import pytest

from chaos.scenarios import ScenarioLoadError, load_scenarios

HEADER = "from tests.chaos.test_scenario import make_scenario\n"


def module(site: Path, source: str) -> str:
    """A module of a fresh name holding ``source``; returns its name."""
    name = f"user_module_{uuid.uuid4().hex[:8]}"
    (site / f"{name}.py").write_text(source)
    return name


def test_a_package_with_scenarios_of_its_own_contributes_only_those(site: Path) -> None:
    name = f"user_package_{uuid.uuid4().hex[:8]}"
    (site / name).mkdir()
    (site / name / "__init__.py").write_text(
        HEADER + "SCENARIOS = [make_scenario(name='package-own')]\n"
    )
    (site / name / "sub.py").write_text(HEADER + "SCENARIOS = [make_scenario(name='sub')]\n")
    assert list(load_scenarios([name])) == ["package-own"]


def test_a_package_without_scenarios_contributes_its_public_submodules_in_name_order(
    site: Path,
) -> None:
    name = f"user_package_{uuid.uuid4().hex[:8]}"
    (site / name).mkdir()
    (site / name / "__init__.py").write_text("")
    for sub, scenario in [("b_second", "b"), ("a_first", "a"), ("_private", "hidden")]:
        (site / name / f"{sub}.py").write_text(
            HEADER + f"SCENARIOS = [make_scenario(name={scenario!r})]\n"
        )
    assert list(load_scenarios([name])) == ["a", "b"]


def test_modules_contribute_in_the_order_given_each_in_declaration_order(site: Path) -> None:
    first = module(site, HEADER + "SCENARIOS = [make_scenario(name='z'), make_scenario()]\n")
    second = module(site, HEADER + "SCENARIOS = (make_scenario(name='a'),)\n")
    assert list(load_scenarios([first, second])) == ["z", "demo", "a"]


def test_a_name_declared_twice_by_one_module_names_that_module_once(site: Path) -> None:
    name = module(site, HEADER + "SCENARIOS = [make_scenario(), make_scenario()]\n")
    with pytest.raises(ScenarioLoadError) as raised:
        load_scenarios([name])
    assert str(raised.value) == f"scenario 'demo' is declared twice (by module {name!r})"


def test_a_name_declared_by_two_modules_names_both(site: Path) -> None:
    first = module(site, HEADER + "SCENARIOS = [make_scenario()]\n")
    second = module(site, HEADER + "SCENARIOS = [make_scenario()]\n")
    with pytest.raises(ScenarioLoadError) as raised:
        load_scenarios([first, second])
    assert str(raised.value) == (
        f"scenario 'demo' is declared twice (by module {first!r} and by module {second!r})"
    )


BROKEN = [
    pytest.param(
        "", "cannot import scenario module {name!r}: No module named {name!r}", id="missing"
    ),
    pytest.param(
        "raise RuntimeError('no config')\n",
        "scenario module {name!r} failed on import: RuntimeError: no config",
        id="raises",
    ),
    pytest.param("X = 1\n", "module {name!r} has no SCENARIOS", id="no-scenarios"),
    pytest.param(
        HEADER + "SCENARIOS = [make_scenario(), 42]\n",
        "{name}.SCENARIOS holds 42, not a chaos.scenario.Scenario",
        id="not-a-scenario",
    ),
]


@pytest.mark.parametrize(("source", "message"), BROKEN)
def test_a_broken_module_is_an_error_naming_it(site: Path, source: str, message: str) -> None:
    name = module(site, source) if source else f"no_such_module_{uuid.uuid4().hex[:8]}"
    with pytest.raises(ScenarioLoadError) as raised:
        load_scenarios([name])
    assert str(raised.value) == message.format(name=name)


def _without_distribution(
    monkeypatch: pytest.MonkeyPatch, bare: metadata.EntryPoint, *others: metadata.EntryPoint
) -> None:
    """``metadata.entry_points(group=...)`` gives ``others``, then ``bare`` (no distribution,
    as an entry point made by hand has)."""
    assert bare.dist is None

    def entry_points(**selection: str) -> metadata.EntryPoints:
        assert selection == {"group": "chaos.scenarios"}
        return metadata.EntryPoints([*others, bare])

    monkeypatch.setattr(metadata, "entry_points", entry_points)


def _installed(site: Path, dist: str, entry_points: str, source: str) -> metadata.EntryPoint:
    name = module(site, source)
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points.format(module=name))
    (entry_point,) = metadata.distribution(dist).entry_points
    return entry_point


def test_an_entry_point_without_a_distribution_comes_first_and_is_named_without_one(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = _installed(
        site,
        "Alpha-Dist",
        "[chaos.scenarios]\nalpha = {module}:SCENARIOS\n",
        HEADER + "SCENARIOS = [make_scenario(name='alpha')]\n",
    )
    name = module(site, HEADER + "SCENARIOS = [make_scenario(name='bare')]\n")
    bare = metadata.EntryPoint(name="z-bare", value=f"{name}:SCENARIOS", group="chaos.scenarios")
    _without_distribution(monkeypatch, bare, installed)
    assert list(load_scenarios((), entry_points=True)) == ["bare", "alpha"]

    clash = metadata.EntryPoint(name="clash", value=f"{name}:SCENARIOS", group="chaos.scenarios")
    _without_distribution(monkeypatch, clash, bare)
    with pytest.raises(ScenarioLoadError) as raised:
        load_scenarios((), entry_points=True)
    assert str(raised.value) == (
        f"scenario 'bare' is declared twice (by entry point 'clash' ({name}:SCENARIOS) "
        f"and by entry point 'z-bare' ({name}:SCENARIOS))"
    )
