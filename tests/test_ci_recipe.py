"""examples/ci/chaos.yml is a workflow users copy: it must be valid, and run the harness as it is.

actionlint (installed with the ``dev`` extra, with shellcheck for the ``run:`` scripts) checks it
as GitHub would read it: syntax, expressions, matrix and step references, action versions whose
runtime GitHub has retired. A missing actionlint fails the test: a lint that did not run must
not pass. The ``chaos`` commands of the workflow are parsed by the harness's own parser, so a
renamed flag breaks this test and not a user's CI.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from chaos.cli import _parser
from chaos.toxiproxy.server import TOXIPROXY_VERSION

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "examples" / "ci" / "chaos.yml"

"""Flags of ``chaos run`` the workflow already uses and the harness is gaining beside it; each
takes one value. Once the harness has one, its real parser checks it and this entry is moot."""


def _tool(name: str) -> str:
    """The executable installed beside this Python (the virtualenv's), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: pip install -e '.[dev]' installs it")
    return found


def _steps() -> list[dict[str, object]]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def _chaos_commands() -> list[list[str]]:
    commands = []
    for step in _steps():
        script = str(step.get("run", ""))
        for line in script.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["chaos"]:
                commands.append(words[1:])
    return commands


def test_actionlint_passes_the_workflow() -> None:
    done = subprocess.run(
        [_tool("actionlint"), "-no-color", "-shellcheck", _tool("shellcheck"), str(WORKFLOW)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_finds_a_broken_workflow(tmp_path: Path) -> None:
    """The lint is real: an undefined matrix key and a bad shell quote in a copy fail it."""
    broken = WORKFLOW.read_text().replace("matrix.toxiproxy ==", "matrix.toxiproxi ==", 1)
    broken = broken.replace('>> "$GITHUB_ENV"', ">> $GITHUB_ENV", 1)
    path = tmp_path / "chaos.yml"
    path.write_text(broken)
    done = subprocess.run(
        [_tool("actionlint"), "-no-color", "-shellcheck", _tool("shellcheck"), str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert 'property "toxiproxi" is not defined' in done.stdout, done.stdout
    assert "SC2086" in done.stdout, done.stdout  # shellcheck ran: unquoted $GITHUB_ENV


def test_the_workflow_runs_the_harness_with_its_own_flags() -> None:
    commands = _chaos_commands()
    assert commands, "the workflow runs no chaos command"
    for words in commands:
        _parser().parse_args(words)  # exits (a test failure) on an unknown flag or value
    assert ["run", "--junit", "reports/chaos.xml", "--report", "reports/"] in commands


def test_the_real_toxiproxy_is_the_version_the_embedded_one_follows() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    (job,) = workflow["jobs"].values()
    assert job["env"]["TOXIPROXY_IMAGE"] == f"ghcr.io/shopify/toxiproxy:{TOXIPROXY_VERSION}"
    assert job["strategy"]["matrix"]["toxiproxy"] == ["embedded", "shopify"]


def test_both_legs_upload_the_reports_even_when_the_run_failed() -> None:
    (upload,) = [s for s in _steps() if str(s.get("uses", "")).startswith("actions/upload-art")]
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == "reports/"
    assert "${{ matrix.toxiproxy }}" in upload["with"]["name"]
