"""Scenarios an installed package registers (entry point group chaos.scenarios): found beside
the built-in ones and --scenarios-module's; a name declared by two sources, or an entry point
that does not load, is an error naming it.

Each test installs a real distribution: a module and its ``.dist-info`` (METADATA and
entry_points.txt) in a folder put on sys.path, as pip lays out a wheel, so importlib.metadata
finds it as it finds any installed package.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from chaos.cli import main
from chaos.scenarios import ScenarioLoadError, discover_scenarios, load_scenarios

ROOT = Path(__file__).resolve().parents[2]

USER_MODULE = """
from tests.chaos.test_scenario import make_scenario

SCENARIOS = [make_scenario(name="user-demo"), make_scenario(name="user-demo-2")]
ONE = make_scenario(name="user-one")


def build():
    return [make_scenario(name="user-built")]


NOT_A_SCENARIO = 42
"""


def install(
    site: Path, entry_points: dict[str, str], *, source: str = USER_MODULE, dist: str = ""
) -> tuple[str, str]:
    """Install a distribution (``dist``, default a fresh name) whose module (a fresh name,
    ``{module}`` in the entry points' values) holds ``source``; returns (dist, module)."""
    module = f"user_scenarios_{uuid.uuid4().hex[:8]}"
    dist = dist or f"user-dist-{uuid.uuid4().hex[:6]}"
    site.mkdir(exist_ok=True)
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = [f"{name} = {value.format(module=module)}" for name, value in entry_points.items()]
    (info / "entry_points.txt").write_text("[chaos.scenarios]\n" + "\n".join(lines) + "\n")
    return dist, module


def test_a_module_entry_point_adds_its_scenarios_after_the_built_in_ones(site: Path) -> None:
    install(site, {"mine": "{module}"})
    found = discover_scenarios()
    builtin = load_scenarios()
    assert list(found)[: len(builtin)] == list(builtin)
    assert list(found)[len(builtin) :] == ["user-demo", "user-demo-2"]
    assert "user-demo" not in builtin  # entry points only when asked


def test_entry_points_are_loaded_beside_scenarios_module_too(site: Path) -> None:
    install(site, {"mine": "{module}"})
    found = discover_scenarios(["tests.chaos.selftest_scenarios"])
    assert "selftest-deadline" in found
    assert "user-demo" in found
    assert "rate-limiter-outage" not in found


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("{module}:SCENARIOS", ["user-demo", "user-demo-2"]),
        ("{module}:ONE", ["user-one"]),
        ("{module}:build", ["user-built"]),
    ],
)
def test_an_object_entry_point_may_be_scenarios_a_scenario_or_a_callable(
    site: Path, value: str, names: list[str]
) -> None:
    install(site, {"mine": value})
    found = load_scenarios((), entry_points=True)
    assert list(found) == names


def test_a_name_clash_with_a_built_in_scenario_is_an_error_naming_both(site: Path) -> None:
    source = USER_MODULE + "\nCLASH = [make_scenario(name='rate-limiter-outage')]\n"
    dist, module = install(site, {"clash": "{module}:CLASH"}, source=source)
    with pytest.raises(ScenarioLoadError) as raised:
        discover_scenarios()
    assert str(raised.value) == (
        "scenario 'rate-limiter-outage' is declared twice (by module "
        "'chaos.scenarios.rate_limiter_outage' and by entry point 'clash' "
        f"({module}:CLASH) of {dist} 0.1)"
    )


def test_a_name_clash_between_two_packages_is_an_error_naming_both(site: Path) -> None:
    _, module_a = install(site, {"a": "{module}:ONE"}, dist="dist-a")
    _, module_b = install(site, {"b": "{module}:ONE"}, dist="dist-b")
    with pytest.raises(ScenarioLoadError) as raised:
        load_scenarios((), entry_points=True)
    assert str(raised.value) == (
        f"scenario 'user-one' is declared twice (by entry point 'a' ({module_a}:ONE) of "
        f"dist-a 0.1 and by entry point 'b' ({module_b}:ONE) of dist-b 0.1)"
    )


IN_GROUP = " in group 'chaos.scenarios'"

BROKEN = [
    pytest.param(
        "raise RuntimeError('no config')\n",
        "{module}",
        IN_GROUP + ": scenario module '{module}' failed on import: RuntimeError: no config",
        id="module-raises",
    ),
    pytest.param(
        USER_MODULE,
        "{module}:MISSING",
        IN_GROUP + " failed to load: AttributeError: module '{module}' has no attribute 'MISSING'",
        id="no-attr",
    ),
    pytest.param(
        USER_MODULE,
        "{module}:NOT_A_SCENARIO",
        " gives 42, not a chaos.scenario.Scenario or a sequence of them",
        id="not-scenarios",
    ),
    pytest.param(
        USER_MODULE + "\nTEXT = 'user-demo'\n",
        "{module}:TEXT",
        " gives 'user-demo', not a chaos.scenario.Scenario or a sequence of them",
        id="a-string",
    ),
    pytest.param(
        USER_MODULE + "\nMIXED = [ONE, 'x']\n",
        "{module}:MIXED",
        " gives 'x', not a chaos.scenario.Scenario",
        id="mixed",
    ),
    pytest.param(
        USER_MODULE + "\ndef boom():\n    raise ValueError('bad')\n",
        "{module}:boom",
        IN_GROUP + " failed to load: ValueError: bad",
        id="callable-raises",
    ),
    pytest.param(
        "X = 1\n", "{module}", IN_GROUP + ": module '{module}' has no SCENARIOS", id="no-scenarios"
    ),
    pytest.param(
        "",
        "no_such_module_x9",
        IN_GROUP + ": cannot import scenario module 'no_such_module_x9': "
        "No module named 'no_such_module_x9'",
        id="no-module",
    ),
]


@pytest.mark.parametrize(("source", "value", "message"), BROKEN)
def test_a_broken_entry_point_is_an_error_naming_it_and_its_package(
    site: Path, source: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dist, module = install(site, {"broken": value}, source=source)
    with pytest.raises(ScenarioLoadError) as raised:
        discover_scenarios()
    expected = f"entry point 'broken' ({value.format(module=module)}) of {dist} 0.1" + (
        message.format(module=module)
    )
    assert str(raised.value) == expected
    assert main(["list", "--names"]) == 2
    assert capsys.readouterr().err == f"chaos: error: {expected}\n"


def test_entry_points_are_taken_by_distribution_name_then_by_entry_point_name(
    site: Path,
) -> None:
    install(site, {"a-one": "{module}:ONE"}, dist="zeta-dist")
    source = USER_MODULE + "\nTWO = [make_scenario(name='user-two')]\n"
    install(site, {"z-built": "{module}:build", "m-two": "{module}:TWO"}, dist="alpha-dist",
            source=source)  # fmt: skip
    assert list(load_scenarios((), entry_points=True)) == ["user-two", "user-built", "user-one"]


def test_chaos_list_shows_an_installed_packages_scenarios(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install(site, {"mine": "{module}"})
    assert main(["list", "--names"]) == 0
    names = capsys.readouterr().out.split()
    assert names[-2:] == ["user-demo", "user-demo-2"]
    assert "rate-limiter-outage" in names


def test_a_fresh_interpreter_finds_the_package_on_its_path(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install(site, {"mine": "{module}:ONE"})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "chaos", "list", "--names"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "user-one"
