"""Docs that cannot drift: every Python block of the README, the examples and the docs site runs.

Each block is run the way a user runs it (the convention is in ``tests/_markdown.py`` and
docs/docs-that-run.md): a program as ``python file.py`` in an empty directory, with
``$REDIS_URL`` naming a real redis-server on loopback; a pytest file by pytest in an empty
directory, so with pytest-asyncio's default (strict) mode. A block not meant to run says so,
with its reason. The site builds with ``mkdocs build --strict``, and the incident tables agree
with the scenarios, the example folders and the library.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import resilient
from chaos.scenarios import load_scenarios
from chaos.servers import RedisServer
from tests._markdown import ROOT, Block, all_blocks, markdown_files

BLOCKS = all_blocks()
PYTHON = [block for block in BLOCKS if block.is_python]
RUN = [block for block in PYTHON if block.not_run is None]
PROGRAMS = list({b.code: b for b in RUN if not b.is_pytest_file}.values())  # each text once
PYTEST_FILES = list({b.code: b for b in RUN if b.is_pytest_file}.values())

MKDOCS_BUDGET = 120.0
"""Seconds the strict site build may take here (about 10 on two shared cores)."""


def _user_env(**extra: str) -> dict[str, str]:
    """A user's shell: no pytest options or Toxiproxy choice of this suite, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TOXIPROXY_"))}
    env.pop("PYTHONPATH", None)
    return {**env, **extra}


def test_every_fence_names_its_language() -> None:
    assert [block.where for block in BLOCKS if not block.language] == []


def test_every_python_block_is_run_or_says_why_not() -> None:
    unexplained = [b.where for b in PYTHON if b.not_run is not None and len(b.not_run) < 10]
    assert unexplained == [], "a not-run mark needs its reason"
    assert {b.path for b in RUN} >= {ROOT / "README.md", ROOT / "examples" / "README.md"}
    assert any(b.path.is_relative_to(ROOT / "docs") for b in RUN)
    for block in RUN:  # run below, as a program or as a pytest file (once per distinct text)
        assert block.code in {b.code for b in PROGRAMS + PYTEST_FILES}, block.where


def test_no_program_awaits_at_top_level() -> None:
    """``python file.py`` cannot run a top-level ``await``: such a block is not a program."""
    for block in RUN:
        compile(block.code, block.where, "exec")  # a SyntaxError names the block


@pytest.mark.real_server
@pytest.mark.parametrize("block", PROGRAMS, ids=lambda b: b.where)
def test_program_runs(block: Block, redis_server: RedisServer, tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(block.code)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=_user_env(REDIS_URL=redis_server.url),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, f"{block.where}\n{done.stdout}{done.stderr}"


@pytest.mark.real_server
@pytest.mark.chaos
@pytest.mark.parametrize("block", PYTEST_FILES, ids=lambda b: b.where)
def test_pytest_file_passes_in_pytest_asyncio_default_mode(block: Block, tmp_path: Path) -> None:
    """Saved in an empty directory (no pytest configuration) and run by pytest, with the
    installed plugins: pytest-asyncio in its default strict mode, as a user's suite has it."""
    (tmp_path / "test_snippet.py").write_text(block.code)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_snippet.py"],
        cwd=tmp_path, env=_user_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mode=Mode.STRICT" in done.stdout, done.stdout
    assert re.search(r"\b\d+ passed in ", done.stdout), done.stdout
    assert not re.search(r"skipped|xfail|deselected", done.stdout.splitlines()[-1]), done.stdout


def test_the_site_builds_strict(tmp_path: Path) -> None:
    """mkdocs.yml sets ``strict: true``; ``--strict`` says so again. A broken link, a page
    missing from the nav, a docstring the reference cannot read, a docstring role naming what
    does not exist (tools/griffe_sphinx_roles.py), or a missing include fails."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, env=_user_env(NO_MKDOCS_2_WARNING="1"), capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    assert took < MKDOCS_BUDGET, f"mkdocs build took {took:.1f} s"
    ratelimit = (tmp_path / "reference" / "ratelimit" / "index.html").read_text()
    assert 'id="resilient.ratelimit.FailOpenGuard"' in ratelimit  # generated from docstrings
    assert (
        ":class:" not in ratelimit
    )  # Sphinx roles rendered as code (tools/griffe_sphinx_roles.py)


# -- the incident tables ---------------------------------------------------------------------

TABLES = [ROOT / "README.md", ROOT / "examples" / "README.md", ROOT / "docs" / "index.md"]
EXAMPLES = sorted(p.name for p in (ROOT / "examples").iterdir() if (p / "README.md").exists())
NOT_INCIDENTS = {"ci": "a CI recipe, not an incident"}


def _incident_rows(path: Path) -> list[list[str]]:
    lines = path.read_text().splitlines()
    (start,) = [i for i, line in enumerate(lines) if line.startswith("| incident ")]
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    assert header[1:] == ["mechanism", "pattern", "scenario", "example"], path
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _code(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


@pytest.mark.parametrize("path", TABLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_incident_table_names_every_scenario_example_and_report(path: Path) -> None:
    scenarios = load_scenarios()
    rows = _incident_rows(path)
    named = {code for row in rows for code in _code(row[3])}
    assert named == set(scenarios), "every scenario, and only those"
    examples = {code.rstrip("/").rsplit("/", 1)[-1] for row in rows for code in _code(row[4])}
    assert examples == set(EXAMPLES) - set(NOT_INCIDENTS), "every example folder, and only those"
    reports = set(re.findall(r"`([\w.-]+\.txt)`", path.read_text()))
    assert reports >= {s.incident.file for s in scenarios.values()}, "the reports, named"
    for row in rows:
        (scenario,) = _code(row[3])
        example = _code(row[4])[0].rstrip("/").rsplit("/", 1)[-1]
        if example == scenario:  # the row's date is that of the report its scenario names
            assert scenarios[scenario].incident.file.startswith(row[0].split(",")[0]), row
        assert all(hasattr(resilient, name) for name in _code(row[2])), row[2]
    incidents = ROOT.parent / "shared" / "incidents"  # beside a checkout, as CI lays it
    if incidents.is_dir():  # the reports themselves are not in the repository
        assert reports >= {p.name for p in incidents.glob("*.txt")}, "every incident"


def test_the_three_incident_tables_agree() -> None:
    def essence(path: Path) -> list[tuple[str, ...]]:
        return [
            (row[0], row[1], tuple(_code(row[2])), tuple(_code(row[3])))
            for row in _incident_rows(path)
        ]

    first, *others = (essence(path) for path in TABLES)
    assert all(other == first for other in others)


def test_every_markdown_file_is_covered() -> None:
    assert ROOT / "README.md" in markdown_files()
    assert ROOT / "docs" / "index.md" in markdown_files()
    assert ROOT / "examples" / "ci" / "README.md" in markdown_files()
