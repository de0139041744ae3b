"""Imports point one way (DESIGN.md, Layout): checked on the source, so a new module cannot slip.

- ``resilient`` never imports ``chaos``;
- ``resilient.clock`` and ``resilient.events`` know no pattern;
- ``chaos.toxiproxy`` (a standalone Toxiproxy drop-in) imports neither ``resilient`` nor the engine;
- the engine (``chaos.scenario``, ``chaos.load``, ``chaos.report``, ``chaos.cli``) knows no pattern.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path, package: str | None = None) -> set[str]:
    """Every absolute module name ``path`` imports (relative imports resolved to their package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    if package is None:
        package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def modules_under(*parts: str) -> list[Path]:
    target = ROOT.joinpath(*parts)
    return sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]


def offenders(paths: list[Path], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in paths:
        if not path.exists():
            continue
        bad = sorted(
            name
            for name in imported_modules(path)
            if any(name == f or name.startswith(f + ".") for f in forbidden)
        )
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


ENGINE = ("chaos.scenario", "chaos.load", "chaos.report", "chaos.cli")
FOUNDATIONS = ("resilient.clock", "resilient.events")


def pattern_modules() -> tuple[str, ...]:
    names = []
    for path in (ROOT / "resilient").iterdir():
        name = path.stem if path.suffix == ".py" else path.name
        if name.startswith("_") or name in {"clock", "events", "testing"}:
            continue
        if path.suffix == ".py" or (path / "__init__.py").exists():
            names.append(f"resilient.{name}")
    return tuple(names)


@pytest.mark.parametrize(
    ("scope", "forbidden"),
    [
        (("resilient",), ("chaos",)),
        (("resilient", "clock"), pattern_modules()),
        (("resilient", "events"), pattern_modules()),
        (("chaos", "toxiproxy"), ("resilient", *ENGINE, "chaos.scenarios")),
        (("chaos", "scenario"), ("resilient",)),
        (("chaos", "load"), ("resilient",)),
        (("chaos", "report"), ("resilient",)),
        (("chaos", "cli"), ("resilient",)),
    ],
    ids=lambda value: ".".join(value) if isinstance(value, tuple) and len(value) < 3 else None,
)
def test_imports_point_one_way(scope: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    assert offenders(modules_under(*scope), forbidden) == {}


def test_the_checker_sees_absolute_and_relative_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import resilient.clock\nfrom .. import scenario\nfrom ._proxy import Link\n")
    found = imported_modules(probe, package="chaos.toxiproxy")
    assert {"resilient.clock", "chaos.scenario", "chaos.toxiproxy._proxy"} <= found
