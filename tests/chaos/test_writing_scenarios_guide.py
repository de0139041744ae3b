"""docs/writing-scenarios.md stays true: its scenario module is saved as a user would save it
and run (a single-process and a fleet scenario), its pytest block passes in a user's suite, its
entry point table registers the module, and every ``chaos`` command it shows parses."""

from __future__ import annotations

import os
import re
import shlex
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from chaos.cli import _parser, main
from chaos.scenarios import ENTRY_POINT_GROUP, discover_scenarios
from tests.chaos._saved_reports import junit_schema

pytest_plugins = ["pytester"]

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "writing-scenarios.md"
MODULE = "my_service.chaos_scenarios"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", GUIDE.read_text("utf-8"), re.S)


@pytest.fixture
def user_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The guide's module saved as ``my_service/chaos_scenarios.py`` on the path of this
    process and of the processes it starts (the load, a fleet's replicas)."""
    site = tmp_path / "site"
    package = site / "my_service"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "chaos_scenarios.py").write_text(_blocks("python")[0])
    monkeypatch.syspath_prepend(str(site))
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(site), path) if p))
    for name in [m for m in sys.modules if m == "my_service" or m.startswith("my_service.")]:
        monkeypatch.delitem(sys.modules, name)
    return site


def test_the_guides_module_declares_a_scenario_and_its_fleet(user_site: Path) -> None:
    found = discover_scenarios([MODULE])
    assert list(found) == ["checkout-slow-pricing", "checkout-slow-pricing-fleet"]
    assert [arm.replicas for arm in found["checkout-slow-pricing-fleet"].arms] == [2, 2]


def test_the_guides_entry_point_registers_the_module(user_site: Path) -> None:
    (toml,) = _blocks("toml")
    table = tomllib.loads(toml)["project"]["entry-points"]
    assert list(table) == [ENTRY_POINT_GROUP]
    info = user_site / "my_service-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-service\nVersion: 0.1\n")
    lines = "".join(f"{name} = {value}\n" for name, value in table[ENTRY_POINT_GROUP].items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
    found = discover_scenarios()
    assert "checkout-slow-pricing" in found
    assert "rate-limiter-outage" in found


def test_every_chaos_command_in_the_guide_parses() -> None:
    commands = [
        shlex.split(line, comments=True)
        for block in _blocks("sh")
        for line in block.splitlines()
        if line.startswith("chaos ")
    ]
    assert len(commands) >= 7
    for command in commands:
        _parser().parse_args(command[1:])


@pytest.mark.chaos
@pytest.mark.real_server
def test_the_guides_pytest_block_passes_in_a_users_suite(
    user_site: Path, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"  # strict: the default mode
    )
    pytester.makepyfile(test_guide=_blocks("python")[1])
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.mark.chaos
@pytest.mark.real_server
def test_the_guides_fleet_scenario_passes_and_writes_junit(
    user_site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = tmp_path / "junit.xml"
    argv = ["run", "checkout-slow-pricing-fleet", "--scenarios-module", MODULE, "--scale", "0.5"]
    status = main([*argv, "--junit", str(junit)])
    assert status == 0, capsys.readouterr().out
    junit_schema().validate(str(junit))
    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "0", "0")
